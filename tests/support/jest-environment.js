/**
 * jest's node environment, plus the real `process` for tests/support/engine.ts. A test file sees a
 * copy of `process` whose listeners never fire; an inline program's uncaught errors reach the real
 * one, and engine.ts hands them to the Automation API's language server (which listens on the test
 * file's copy) for the length of a run, as the Node.js language host would see them.
 */
const { TestEnvironment } = require("jest-environment-node");

class HostProcessEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.global.__hostProcess = process;
  }
}

module.exports = HostProcessEnvironment;
