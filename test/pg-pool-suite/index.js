'use strict'
// What the vendored suite's `require('../')` gets in place of pg-pool: lifeguard's drop-in
// Pool from the built package (npm run build), the code users install, not the sources.
module.exports = require('../../dist/adapters/pg/index.js').Pool
