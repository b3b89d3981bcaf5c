// jsdom, not happy-dom: DOMPurify's behaviour is what the tests check, and jsdom's parser is the
// one it is tested against upstream.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.js"],
    watch: false,
  },
});
