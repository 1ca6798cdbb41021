// Writes test/attack/STATUS.md's table from a vitest JSON report: one line per test, PASS or
// FAIL and, for a failure, the promises it broke in a few words.
//   npx vitest run test/attack test/faults --reporter=json --outputFile=/tmp/attack.json
//   node test/attack/status.mjs /tmp/attack.json
import { readFileSync } from 'node:fs';

const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));

/** One soft failure → a few words. */
function short(message) {
  const m = message.split('\n')[0].replace(/^AssertionError: /, '').replace(/ \/\/ Object\.is equality/g, '');
  const rules = [
    [/^requests the upstream received: expected \[.*\] to deeply equal \[\]/, () => 'forwarded to the upstream'],
    [/^status: expected (\d+) to be (\d+)/, (x) => `status ${x[1]} (want ${x[2]})`],
    [/^x-content-type-options: expected undefined/, () => 'no nosniff'],
    [/^cache-control: expected undefined/, () => 'no no-store'],
    [/^content-type: expected (\S+) to be 'application\/problem\+json'/, (x) => `content-type ${x[1]}`],
    [/^problem code \(got undefined\)/, () => null],
    [/^problem code \(got (\S+)\)/, (x) => `code ${x[1]}`],
    [/^the body is not JSON/, () => 'no problem body'],
    [/^problem (status|requestId|hint)/, () => null],
    [/^x-request-id equals/, () => null],
    [/^audit line: audit reason ([^\s:]+)/, (x) => `audited as ${x[1]}`],
    [/^audit line: audit lines of this request: expected \[.*\] to have a length of 1 but got (\d+)/, (x) => `audited ${x[1]}x`],
    [/^audit line: condition not met/, () => 'not audited'],
    [/^counted in keygate_requests_total: expected \+?(\d+) to be 1/, (x) => `counted ${x[1]}x`],
    [/^keygate sent no HTTP answer.*closed \((\w+)\)/, (x) => `no HTTP answer, connection closed (${x[1]})`],
    [/^1xx answers before the refusal: expected \[ (\d+) \]/, (x) => `${x[1]} Continue sent before the refusal`],
    [/^Error: keygate exited with 1 before listening/, () => 'keygate refuses the config'],
  ];
  for (const [re, f] of rules) {
    const x = re.exec(m);
    if (x) return f(x);
  }
  return m.length > 160 ? m.slice(0, 157) + '…' : m;
}

let pass = 0;
let fail = 0;
const out = [];
for (const file of report.testResults.sort((a, b) => a.name.localeCompare(b.name))) {
  out.push(`\n### ${file.name.replace(/.*\/(test\/)/, '$1')}\n`);
  const suiteError = file.message ? short(file.message) : '';
  for (const a of file.assertionResults) {
    const name = [...a.ancestorTitles, a.title].join(' › ');
    if (a.status === 'passed') {
      pass++;
      out.push(`- PASS ${name}`);
      continue;
    }
    fail++;
    const why = a.status === 'failed' ? [...new Set(a.failureMessages.map(short).filter(Boolean))].join('; ') : `not run: set-up failed${suiteError ? ` (${suiteError})` : ''}`;
    out.push(`- FAIL ${name} — ${why}`);
  }
}
process.stdout.write(`${pass} pass, ${fail} fail (set-up failures counted as failures)\n${out.join('\n')}\n`);
