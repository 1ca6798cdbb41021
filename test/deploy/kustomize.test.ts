// deploy/kubernetes as users apply it: every overlay rendered with `kubectl kustomize`, every
// object validated against the Kubernetes schemas (kubernetes-models), then what matters
// asserted on the rendered objects: hardened pods, probes on the admin port, a grace period
// longer than preStop + drain, a PodDisruptionBudget and a NetworkPolicy that cover the pods,
// the admin port closed to all but the monitoring namespace, and a keygate.yaml that
// `keygate check` accepts with the files laid out exactly where the pod mounts them (for the
// fleet overlays, against a Redis it reaches: check reads the inventory through the connection).
//
// The schemas check types, enums, formats and required fields, not unknown field names: a
// misspelt field would pass them, so each field that matters is asserted by name below.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { KeygateConfig } from '../../src/config/schema.js';
import { BIN } from '../helpers/harness.js';
import { mintCa, mintServer } from '../helpers/pki.js';
import { deletePrefix, freePort, testPrefix } from '../store/redis-support.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KUBE = join(ROOT, 'deploy/kubernetes');
const OVERLAYS = readdirSync(join(KUBE, 'overlays')).sort();
/** Stands in for the Secret keygate-redis in `keygate check`; a database the other tests leave alone. */
const REDIS_URL = 'redis://127.0.0.1:6379/15';
/** The fleet configs' `prefix: "keygate:"` is replaced by one of this run's own (check only reads, but be sure). */
const PREFIX = testPrefix();

// Rendered manifests are untyped YAML: `any` below is deliberate.
type K8s = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> };
type Container = { name: string; image: string; args?: string[]; env?: any[]; ports?: Array<{ name?: string; containerPort: number }>; [k: string]: any };

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

function kubectlKustomize(dir: string): string {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('kubectl is not on PATH. This test renders deploy/kubernetes with `kubectl kustomize` (kustomize v5, kubectl >= 1.27); the machine images ship it as /usr/bin/kubectl. Install kubectl, then run the test again.');
  }
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return r.stdout;
}

const rendered = new Map<string, K8s[]>();
function render(overlay: string): K8s[] {
  let objects = rendered.get(overlay);
  if (!objects) {
    objects = parseAllDocuments(kubectlKustomize(join(KUBE, 'overlays', overlay))).map((d) => d.toJS() as K8s);
    rendered.set(overlay, objects);
  }
  return objects;
}

const ofKind = (objects: K8s[], kind: string) => objects.filter((o) => o.kind === kind);
const workloads = (objects: K8s[]) => objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
const keygateWorkload = (objects: K8s[]): K8s => {
  const found = ofKind(objects, 'Deployment').filter((d) => d.spec.template.spec.containers.some((c: Container) => c.name === 'keygate'));
  expect(found, 'one Deployment with a keygate container').toHaveLength(1);
  return found[0]!;
};
const containerOf = (w: K8s, name: string): Container => w.spec.template.spec.containers.find((c: Container) => c.name === name);

/** A label selector that is not empty and whose every label the pod carries. */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** A container port named or numbered in a probe, Service or NetworkPolicy, as a number. */
function portNumber(c: Container, port: string | number): number | undefined {
  return typeof port === 'number' ? port : c.ports?.find((p) => p.name === port)?.containerPort;
}

const seconds = (ms: number) => ms / 1000;

let pki: { cert: string; key: string; clientCa: string };
beforeAll(async () => {
  const ca = await mintCa('kustomize test server CA');
  const server = await mintServer(ca.authority, ['orders-api.example']);
  const clientCa = await mintCa('kustomize test client CA');
  pki = { cert: server.certPem + ca.certPem, key: server.keyPem, clientCa: clientCa.certPem };
});

const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
  await deletePrefix(PREFIX, REDIS_URL);
});

/**
 * The keygate container's file system as the pod would see it, under a temp folder: the
 * ConfigMap's files and each Secret's files at their mount paths. Returns that folder and the
 * container's environment with Secret references filled in.
 */
function layOut(objects: K8s[], opts: { skipVolume?: string } = {}): { root: string; env: NodeJS.ProcessEnv } {
  const w = keygateWorkload(objects);
  const c = containerOf(w, 'keygate');
  const root = mkdtempSync(join(tmpdir(), 'keygate-kustomize-'));
  temps.push(root);
  const secretFiles: Record<string, Record<string, string>> = {
    'keygate-tls': { 'tls.crt': pki.cert, 'tls.key': pki.key },
    'keygate-client-ca': { 'ca.crt': pki.clientCa },
    'keygate-credentials': { 'credentials.yaml': 'version: 1\naccounts:\n  - name: orders-client\n    roles: [viewer]\n    createdAt: 2026-01-01T00:00:00.000Z\n    updatedAt: 2026-01-01T00:00:00.000Z\n' },
  };
  for (const m of c.volumeMounts as Array<{ name: string; mountPath: string }>) {
    if (m.name === opts.skipVolume) continue;
    const volume = w.spec.template.spec.volumes.find((v: any) => v.name === m.name);
    let files: Record<string, string>;
    if (volume.configMap) {
      const cm = ofKind(objects, 'ConfigMap').find((o) => o.metadata.name === volume.configMap.name);
      expect(cm, `ConfigMap ${volume.configMap.name} is part of the overlay`).toBeDefined();
      files = cm!.data!;
    } else if (volume.secret) {
      files = secretFiles[volume.secret.secretName]!;
      expect(files, `the test knows what Secret ${volume.secret.secretName} holds`).toBeDefined();
    } else {
      throw new Error(`volume ${m.name}: neither a ConfigMap nor a Secret`);
    }
    const dir = join(root, m.mountPath);
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  }
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef?.name === 'keygate-redis') env[e.name] = REDIS_URL;
    else throw new Error(`env ${e.name}: the test has no value for it`);
  }
  return { root, env };
}

/** The config file named by the container's `serve -c FILE`, under the laid-out root. */
function configPath(objects: K8s[], root: string): string {
  const args = containerOf(keygateWorkload(objects), 'keygate').args!;
  expect(args[0]).toBe('serve');
  const file = args[args.indexOf('-c') + 1]!;
  expect(file.startsWith('/etc/keygate/')).toBe(true);
  return join(root, file);
}

function loadRenderedConfig(objects: K8s[]): { config: KeygateConfig; root: string } {
  const { root, env } = layOut(objects);
  const { loaded, problems } = loadConfig(configPath(objects, root), env);
  expect(problems).toEqual([]);
  return { config: loaded!.config, root };
}

/** `keygate check` on the laid-out config; `redisUrl` replaces the Secret's URL (a Redis that does not answer). */
function check(objects: K8s[], opts: { skipVolume?: string; redisUrl?: string } = {}) {
  const { root, env } = layOut(objects, opts);
  const file = configPath(objects, root);
  const text = readFileSync(file, 'utf8');
  if (/^\s+redis:/m.test(text)) {
    const own = text.replace(/prefix: "keygate:"/, `prefix: "${PREFIX}"`);
    expect(own, 'the fleet config names its prefix').not.toBe(text);
    writeFileSync(file, own);
  }
  if (opts.redisUrl) env.KEYGATE_REDIS_URL = opts.redisUrl;
  const r = spawnSync(process.execPath, [BIN, 'check', '-c', file], { env, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, onRedis: text !== readFileSync(file, 'utf8') };
}

describe('kubernetes-models validation', () => {
  it('refuses an object of the wrong shape (so that a pass below means something)', () => {
    const broken = structuredClone(keygateWorkload(render('sidecar')));
    containerOf(broken, 'keygate').ports![0]!.containerPort = 'https' as unknown as number;
    expect(() => new Deployment(broken as any).validate()).toThrow(/containerPort/);
  });
});

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  it('renders, and every object is valid against the Kubernetes schemas', () => {
    const objects = render(overlay);
    expect(objects.length).toBeGreaterThan(4);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `a schema for ${o.apiVersion} ${o.kind} (add it to MODELS)`).toBeDefined();
      expect(() => new Model!(o).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
    }
  });

  it('runs every pod hardened: non-root, no privilege escalation, read-only root, no capabilities, seccomp, resources', () => {
    for (const w of workloads(render(overlay))) {
      const pod = w.spec.template.spec;
      const where = `${w.kind} ${w.metadata.name}`;
      expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
      expect(pod.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
      expect(pod.automountServiceAccountToken, where).toBe(false);
      for (const c of pod.containers as Container[]) {
        const at = `${where} container ${c.name}`;
        const sc = c.securityContext ?? {};
        expect(sc.allowPrivilegeEscalation, at).toBe(false);
        expect(sc.privileged ?? false, at).toBe(false);
        expect(sc.capabilities?.drop, at).toEqual(['ALL']);
        expect(sc.capabilities?.add, at).toBeUndefined();
        expect(sc.runAsUser ?? pod.securityContext.runAsUser, at).toBeGreaterThan(0);
        // The example API of the sidecar layout is yours: a read-only root is up to it.
        if (c.name !== 'api') expect(sc.readOnlyRootFilesystem, at).toBe(true);
        expect(c.resources?.requests?.cpu, at).toBeDefined();
        expect(c.resources?.requests?.memory, at).toBeDefined();
        expect(c.resources?.limits?.memory, at).toBeDefined();
        expect(c.image, at).not.toMatch(/:latest$|^[^:]+$/);
      }
    }
  });

  it('probes keygate on its admin port and lets it drain before the grace period ends', () => {
    const objects = render(overlay);
    const w = keygateWorkload(objects);
    const c = containerOf(w, 'keygate');
    const { config } = loadRenderedConfig(objects);
    expect(portNumber(c, 'https')).toBe(config.listen.port);
    expect(portNumber(c, 'admin')).toBe(config.admin.port);
    // The kubelet probes the pod IP, so the admin listener must not be on loopback only.
    expect(config.admin.enabled).toBe(true);
    expect(config.admin.host).toBe('0.0.0.0');
    expect(config.admin.tls).toBeNull();
    for (const [probe, path] of [['startupProbe', '/healthz'], ['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']] as const) {
      expect(c[probe]?.httpGet?.path, probe).toBe(path);
      expect(portNumber(c, c[probe].httpGet.port), probe).toBe(config.admin.port);
    }
    const preStop = c.lifecycle?.preStop?.exec?.command as string[];
    expect(preStop?.[0]).toBe('sleep');
    const preStopSeconds = Number(preStop[1]);
    expect(preStopSeconds).toBeGreaterThan(0);
    expect(w.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(preStopSeconds + seconds(config.shutdown.drainTimeout));
  });

  it('has a PodDisruptionBudget and a Service for the keygate pods', () => {
    const objects = render(overlay);
    const w = keygateWorkload(objects);
    const labels = w.spec.template.metadata.labels as Record<string, string>;
    expect(selects(w.spec.selector.matchLabels, labels)).toBe(true);
    const pdbs = ofKind(objects, 'PodDisruptionBudget').filter((p) => selects(p.spec.selector?.matchLabels, labels));
    expect(pdbs).toHaveLength(1);
    const pdb = pdbs[0]!.spec;
    if (pdb.maxUnavailable !== undefined) expect(pdb.maxUnavailable).toBeGreaterThanOrEqual(1);
    else expect(pdb.minAvailable).toBeLessThan(w.spec.replicas);
    expect(w.spec.replicas).toBeGreaterThanOrEqual(2);

    const services = ofKind(objects, 'Service').filter((s) => selects(s.spec.selector, labels));
    expect(services).toHaveLength(1);
    const keygate = containerOf(w, 'keygate');
    const targets = services[0]!.spec.ports.map((p: any) => p.targetPort);
    expect(targets.map((t: string | number) => portNumber(keygate, t))).toEqual([portNumber(keygate, 'https')]);
  });

  it('admits the admin port only from the monitoring namespace', () => {
    const objects = render(overlay);
    const w = keygateWorkload(objects);
    const c = containerOf(w, 'keygate');
    const labels = w.spec.template.metadata.labels as Record<string, string>;
    const policies = ofKind(objects, 'NetworkPolicy').filter((p) => selects(p.spec.podSelector?.matchLabels, labels));
    expect(policies).toHaveLength(1);
    const spec = policies[0]!.spec;
    expect(spec.policyTypes).toContain('Ingress');
    const rules = spec.ingress as Array<{ from?: any[]; ports?: Array<{ port: string | number }> }>;
    // A rule without ports would open every port of the pod, the admin port included.
    for (const r of rules) expect(r.ports?.length, JSON.stringify(r)).toBeGreaterThan(0);
    const admits = (port: number) => rules.filter((r) => r.ports!.some((p) => portNumber(c, p.port) === port));
    expect(admits(portNumber(c, 'https')!)).toHaveLength(1);
    const admin = admits(portNumber(c, 'admin')!);
    expect(admin).toHaveLength(1);
    expect(admin[0]!.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
  });

  it('ships a keygate.yaml that `keygate check` accepts with the files where the pod mounts them', async () => {
    const objects = render(overlay);
    const r = check(objects);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/: ok — /);
    // Refused twin: without the client CA's mount, the config names a file that is not there.
    const missing = check(objects, { skipVolume: 'client-ca' });
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain('client-ca/ca.crt');
    // And for a fleet, a Redis that does not answer is a problem check reports.
    if (r.onRedis) {
      const down = check(objects, { redisUrl: `redis://127.0.0.1:${await freePort()}/0` });
      expect(down.code).not.toBe(0);
      expect(down.out).toMatch(/cannot read the credential store: redis 127\.0\.0\.1:\d+\/0: not reachable/);
    }
  }, 40_000);
});

describe('the sidecar overlay', () => {
  const objects = () => render('sidecar');

  it('serves the credential file from a Secret mounted read-only, where the config looks for it', () => {
    const w = keygateWorkload(objects());
    const c = containerOf(w, 'keygate');
    const mount = c.volumeMounts.find((m: any) => m.name === 'credentials');
    expect(mount.readOnly).toBe(true);
    const volume = w.spec.template.spec.volumes.find((v: any) => v.name === 'credentials');
    expect(volume.secret.secretName).toBe('keygate-credentials');
    const { config, root } = loadRenderedConfig(objects());
    expect(config.store.redis).toBeNull();
    expect(dirname(config.store.file)).toBe(join(root, mount.mountPath));
    // Every mount of keygate is read-only in this layout.
    for (const m of c.volumeMounts) expect(m.readOnly, m.name).toBe(true);
  });

  it('puts the API on loopback next to keygate, exposed only through keygate', () => {
    const w = keygateWorkload(objects());
    const api = containerOf(w, 'api');
    expect(api.env).toContainEqual({ name: 'HOST', value: '127.0.0.1' });
    expect(api.ports).toBeUndefined();
    const { config } = loadRenderedConfig(objects());
    const port = api.env!.find((e) => e.name === 'PORT').value;
    expect(config.routes.map((r) => r.upstream)).toEqual([`http://127.0.0.1:${port}`]);
    // The API outlives keygate's preStop and drain, so that requests in flight complete.
    const keygatePreStop = Number(containerOf(w, 'keygate').lifecycle.preStop.exec.command[1]);
    expect(Number(api.lifecycle.preStop.exec.command[1])).toBeGreaterThanOrEqual(keygatePreStop + seconds(config.shutdown.drainTimeout));
  });
});

describe.each(OVERLAYS.filter((o) => o.startsWith('fleet')))('the %s overlay', (overlay) => {
  it('runs several replicas on store.redis, with the URL from a Secret', () => {
    const objects = render(overlay);
    const w = keygateWorkload(objects);
    expect(w.spec.replicas).toBeGreaterThanOrEqual(3);
    expect(w.spec.template.spec.topologySpreadConstraints.every((t: any) => selects(t.labelSelector.matchLabels, w.spec.template.metadata.labels))).toBe(true);
    const env = containerOf(w, 'keygate').env!.find((e) => e.name === 'KEYGATE_REDIS_URL');
    expect(env.valueFrom.secretKeyRef).toEqual({ name: 'keygate-redis', key: 'url' });
    const { config } = loadRenderedConfig(objects);
    expect(config.store.redis?.url).toBe(REDIS_URL);
    expect(config.store.redis?.failMode).toBe('closed');
    expect(w.spec.template.spec.volumes.map((v: any) => v.name)).not.toContain('credentials');
  });
});

describe('the fleet-with-example-redis overlay', () => {
  it('adds a Redis marked as an example, persisting with AOF, reachable only from keygate', () => {
    const objects = render('fleet-with-example-redis');
    const [redis, ...more] = ofKind(objects, 'StatefulSet');
    expect(more).toHaveLength(0);
    expect(redis!.metadata.annotations?.['keygate.example/notice']).toMatch(/^Example only/);
    const args = containerOf(redis!, 'redis').args!;
    expect(args.slice(args.indexOf('--appendonly'), args.indexOf('--appendonly') + 2)).toEqual(['--appendonly', 'yes']);
    expect(redis!.spec.volumeClaimTemplates.map((v: any) => v.metadata.name)).toEqual(['data']);
    const labels = redis!.spec.template.metadata.labels as Record<string, string>;
    const [policy] = ofKind(objects, 'NetworkPolicy').filter((p) => selects(p.spec.podSelector?.matchLabels, labels));
    const keygateLabels = keygateWorkload(objects).spec.template.metadata.labels as Record<string, string>;
    expect(policy!.spec.ingress).toHaveLength(1);
    expect(policy!.spec.ingress[0].from).toHaveLength(1);
    expect(selects(policy!.spec.ingress[0].from[0].podSelector.matchLabels, keygateLabels)).toBe(true);
    // The fleet overlay alone brings no Redis: that one is the operator's.
    expect(ofKind(render('fleet'), 'StatefulSet')).toHaveLength(0);
  });
});
