/**
 * jest's node environment, plus the real `process` for the harness. A test file sees a copy of
 * `process` whose listeners never fire; the harness plays the language host, which owns the
 * process's unhandledRejection handler while the program runs (sdk/nodejs/cmd/run), so it needs
 * the real one.
 */
const { TestEnvironment } = require("jest-environment-node");

class HarnessEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.global.__harnessHostProcess = process;
  }
}

module.exports = HarnessEnvironment;
