'use strict'
// A mocha reporter for test/integration/pg-pool-suite.test.ts: one JSON object per line, per
// event, written synchronously to the file named by `--reporter-option output=FILE`. The
// suite's setup.js ends the process on an unhandled rejection or a warning; the lines
// written up to then still say which test was running.
const fs = require('fs')
const path = require('path')
const Mocha = require('mocha')

const { EVENT_RUN_BEGIN, EVENT_RUN_END, EVENT_TEST_BEGIN, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants

class JsonLinesReporter extends Mocha.reporters.Base {
  constructor(runner, options) {
    super(runner, options)
    const output = (options.reporterOption || options.reporterOptions || {}).output
    if (!output) throw new Error('reporter.js: pass --reporter-option output=FILE')
    const fd = fs.openSync(output, 'w')
    const write = (line) => fs.writeSync(fd, JSON.stringify(line) + '\n')
    const about = (runnable) => ({ title: runnable.fullTitle(), file: runnable.file ? path.basename(runnable.file) : undefined })

    runner.once(EVENT_RUN_BEGIN, () => write({ event: 'start', total: runner.total }))
    runner.on(EVENT_TEST_BEGIN, (test) => write({ event: 'begin', ...about(test) }))
    runner.on(EVENT_TEST_PASS, (test) => write({ event: 'pass', ...about(test), ms: test.duration }))
    // A hook's failure names the hook (`"before all" hook ...`), with type 'hook'.
    runner.on(EVENT_TEST_FAIL, (runnable, error) =>
      write({ event: 'fail', type: runnable.type, ...about(runnable), error: String((error && error.message) || error).split('\n')[0] })
    )
    runner.on(EVENT_TEST_PENDING, (test) => write({ event: 'pending', ...about(test) }))
    runner.once(EVENT_RUN_END, () => write({ event: 'end', at: Date.now(), stats: this.stats }))
  }
}

module.exports = JsonLinesReporter
