'use strict'
// What the vendored suite's `require('../')` gets in place of pg-pool: lifeguard's drop-in
// Pool from the built package (npm run build), the code users install. Resolved as
// `require('lifeguard/pg')` resolves for them, through the package's exports map (from the
// repository root's package.json: this directory is a package of its own).
const { createRequire } = require('module')
const path = require('path')

module.exports = createRequire(path.join(__dirname, '../../package.json'))('lifeguard/pg').Pool
