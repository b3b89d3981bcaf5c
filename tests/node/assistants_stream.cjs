// Streams a reasoning run through a served engine with the official Node SDK, unchanged.
// Usage: node assistants_stream.cjs SDK_DIR BASE_URL API_KEY. Prints one JSON line of what the
// SDK's AssistantStream reported; any SDK error exits non-zero with the stack on stderr.
const { createRequire } = require("node:module");
const path = require("node:path");

const [sdkDir, baseURL, apiKey] = process.argv.slice(2);
const requireHere = createRequire(path.join(path.resolve(sdkDir), "package.json"));
const sdk = requireHere("openai");
const version = JSON.parse(require("node:fs").readFileSync(
  path.join(path.dirname(requireHere.resolve("openai")), "package.json"), "utf8")).version;
const OpenAI = sdk.OpenAI || sdk.default || sdk;

async function main() {
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  const asst = await client.beta.assistants.create({
    model: "responses:fake",
    tools: [{ type: "function", function: { name: "zap", parameters: { type: "object" } } }],
  });
  const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "6*7?" }] });
  const seen = { text: "", steps: [], stepDeltas: 0, events: [], version };
  const stream = client.beta.threads.runs
    .stream(thread.id, { assistant_id: asst.id })
    .on("textDelta", (delta) => { seen.text += delta.value; })
    .on("runStepDelta", () => { seen.stepDeltas += 1; })
    .on("runStepDone", (step) => { seen.steps.push(step.type); })
    .on("event", (event) => { seen.events.push(event.event); });
  const run = await stream.finalRun();
  seen.status = run.status;
  seen.usage = run.usage;
  seen.messages = (await client.beta.threads.messages.list(thread.id)).data.map(
    (m) => m.content.map((c) => c.text?.value).join(""));
  // A second run: reasoning, then a tool call, its output submitted over a stream.
  await client.beta.threads.messages.create(thread.id, { role: "user", content: "zap it" });
  const asking = await client.beta.threads.runs.stream(thread.id, { assistant_id: asst.id }).finalRun();
  seen.toolStatus = asking.status;
  const [call] = asking.required_action.submit_tool_outputs.tool_calls;
  seen.toolCall = { id: call.id, name: call.function.name, arguments: call.function.arguments };
  const outputs = [{ tool_call_id: call.id, output: "ok" }];
  // The SDK's own signature changed in v5: (threadId, runId, body) before, (runId, body) after.
  const after = parseInt(version, 10) >= 5
    ? client.beta.threads.runs.submitToolOutputsStream(asking.id, { thread_id: thread.id, tool_outputs: outputs })
    : client.beta.threads.runs.submitToolOutputsStream(thread.id, asking.id, { tool_outputs: outputs });
  seen.afterText = "";
  after.on("textDelta", (delta) => { seen.afterText += delta.value; });
  seen.afterStatus = (await after.finalRun()).status;
  process.stdout.write(JSON.stringify(seen) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
