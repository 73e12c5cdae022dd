/** Two projects: `unit` runs anywhere containerd's Debian binaries are (renderer, scripts, component
 *  under mocks); `e2e` needs the local SSH fleet (tests/fleet) and runs serially. */
const common = {
  preset: "ts-jest",
  testEnvironment: "node",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json", isolatedModules: false }] },
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
