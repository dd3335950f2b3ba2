#!/usr/bin/env python3
"""A/B the 14 `cairn-bench compare` dashboard queries against Cairn servers
that serve the same data (copies of one data directory).

usage: query-ab.py END_MS RUNS name=port [name=port ...] [only=q1,q2]

END_MS is the `--end-ms` given to `cairn-bench ingest` (240 scrapes, 15 s
apart, tenant `bench`); the window is `compare`'s (start at the first whole
minute with 5 m of data behind it, end 8 s after the last sample, step 30 s).
Requests are interleaved across servers after one warm-up each; prints the
median wall time and the mean server CPU time (utime+stime of the process
listening on the port, from /proc) per request, and whether the answers are
identical (hash of the sorted `data.result`)."""
import hashlib, json, os, re, statistics, subprocess, sys, time
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = open(os.path.join(ROOT, 'crates/cairn-bench/src/queries.rs')).read()
QUERIES = [
    {'name': m.group(1), 'expr': m.group(2), 'range': m.group(3) == 'true'}
    for m in re.finditer(r'name: "([^"]+)",\s*expr: r#"(.*?)"#,\s*range: (true|false)', SRC, re.S)
]
end_ms, runs = int(sys.argv[1]), int(sys.argv[2])
first = end_ms - 239 * 15000
START = (first + 300000) // 60000 * 60000 + 60000
END, STEP = end_ms + 8000, 30000
only, targets = None, []
for a in sys.argv[3:]:
    k, v = a.split('=', 1)
    if k == 'only':
        only = set(v.split(','))
    else:
        targets.append((k, int(v)))

def pid_of(port):
    out = subprocess.run(['ss', '-ltnpH', f'sport = :{port}'], capture_output=True, text=True).stdout
    return int(out.split('pid=')[1].split(',')[0])

PIDS = {p: pid_of(p) for _, p in targets}
TICK = os.sysconf('SC_CLK_TCK')

def cpu_ms(port):
    fields = open(f'/proc/{PIDS[port]}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK

session = requests.Session()

def run(port, q):
    base = f'http://127.0.0.1:{port}/prometheus/api/v1/'
    if q['range']:
        url, params = base + 'query_range', {'query': q['expr'], 'start': START / 1000, 'end': END / 1000, 'step': STEP / 1000}
    else:
        url, params = base + 'query', {'query': q['expr'], 'time': END / 1000}
    t = time.perf_counter()
    r = session.get(url, params=params, headers={'X-Scope-OrgID': 'bench'})
    dt = (time.perf_counter() - t) * 1000
    r.raise_for_status()
    result = sorted(r.json()['data']['result'], key=lambda x: json.dumps(x['metric'], sort_keys=True))
    return dt, hashlib.sha1(json.dumps(result, sort_keys=True).encode()).hexdigest()[:10]

print('%-34s' % 'query (wall ms / CPU ms)' + ''.join('%13s' % k for k, _ in targets) + '  answers')
wall_sum = {k: 0.0 for k, _ in targets}
cpu_sum = {k: 0.0 for k, _ in targets}
for q in QUERIES:
    if only and q['name'] not in only:
        continue
    hashes = {k: run(p, q)[1] for k, p in targets}
    walls = {k: [] for k, _ in targets}
    cpus = {k: 0.0 for k, _ in targets}
    for _ in range(runs):
        for k, p in targets:
            c0 = cpu_ms(p)
            walls[k].append(run(p, q)[0])
            cpus[k] += cpu_ms(p) - c0
    row = ''
    for k, _ in targets:
        wall, cpu = statistics.median(walls[k]), cpus[k] / runs
        wall_sum[k] += wall
        cpu_sum[k] += cpu
        row += '%8.1f/%4.0f' % (wall, cpu)
    same = 'same' if len(set(hashes.values())) == 1 else 'DIFFERENT ' + str(hashes)
    print('%-34s' % (('R ' if q['range'] else 'I ') + q['name']) + row + '  ' + same)
print('%-34s' % 'sum' + ''.join('%8.1f/%4.0f' % (wall_sum[k], cpu_sum[k]) for k, _ in targets))
