/** Two projects: `unit` runs anywhere containerd's Debian binaries are (renderer, scripts, component
 *  under mocks); `e2e` needs the local SSH fleet (tests/fleet) and runs serially. */
const common = {
  preset: "ts-jest",
  // jest's node environment, giving inline programs the real process (tests/support/jest-environment.js).
  testEnvironment: "<rootDir>/tests/support/jest-environment.js",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json", isolatedModules: false }] },
  // Only our sources: .cache holds containerd binaries and the Go module cache (hundreds of
  // thousands of other projects' files that jest would otherwise crawl).
  // Programs import the library by its package name; tests take it from source.
  moduleNameMapper: { "^@containerd-pulumi/containerd-node$": "<rootDir>/provider/src/index.ts" },
  roots: ["<rootDir>/provider", "<rootDir>/tests", "<rootDir>/examples", "<rootDir>/program"],
};
module.exports = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/tests/unit/**/*.test.ts"] },
    {
      ...common,
      displayName: "e2e",
      testMatch: ["<rootDir>/tests/e2e/**/*.test.ts"],
      // The local fleet (tests/fleet), up once for the run; KEEP_FLEET=1 leaves it up for the next.
      globalSetup: "<rootDir>/tests/e2e/global-setup.ts",
      globalTeardown: "<rootDir>/tests/e2e/global-teardown.ts",
    },
  ],
};
