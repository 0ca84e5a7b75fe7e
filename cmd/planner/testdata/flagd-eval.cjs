// Usage: node flagd-eval.cjs FLAGD_CORE_PREFIX FILE KEY... — loads a flagd
// flag-definition file into flagd's own evaluator (@openfeature/flagd-core,
// installed under FLAGD_CORE_PREFIX by internal/scripts/npm-flagd-core.sh),
// validating it strictly against flagd's schema as flagd's providers can,
// and prints each key's evaluation as JSON: {key: {value, variant, reason,
// errorCode}}. Keys ending in .read or .write are string flags, the others
// boolean.
const fs = require('fs');
const path = require('path');
const [prefix, file, ...keys] = process.argv.slice(2);
const { FlagdCore, MemoryStorage } = require(path.resolve(prefix, 'node_modules', '@openfeature', 'flagd-core'));
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const storage = new MemoryStorage(quiet);
storage.setConfigurations(fs.readFileSync(file, 'utf8'), true);
const core = new FlagdCore(storage, quiet);
const out = {};
for (const key of keys) {
  const r = /\.(read|write)$/.test(key)
    ? core.resolveStringEvaluation(key, 'default', {}, quiet)
    : core.resolveBooleanEvaluation(key, false, {}, quiet);
  out[key] = { value: r.value, variant: r.variant, reason: r.reason, errorCode: r.errorCode };
}
process.stdout.write(JSON.stringify(out));
