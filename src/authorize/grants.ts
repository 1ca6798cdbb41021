// What one credential may do: the union of its effective scopes' rules, compiled once per
// distinct scope set at load and shared by every credential with that set. Deny by default:
// an empty scope set allows nothing.
import { ADMIN_SCOPE, BUILTIN_SCOPES } from '../config/builtin-scopes.js';
import type { Grant } from '../vocabulary/principal.js';
import { compileRule, ruleAllows, type CompiledRule } from './rules.js';

export type { Grant };

export class ScopeCatalog {
  private readonly rules = new Map<string, CompiledRule[]>();
  private readonly grants = new Map<string, Grant>();

  /** Compiles every scope; returns the problems as [scope, index, message]. */
  static compile(scopes: Record<string, string[]>): { catalog: ScopeCatalog; problems: Array<[string, number, string]> } {
    const catalog = new ScopeCatalog();
    const problems: Array<[string, number, string]> = [];
    for (const [name, texts] of Object.entries(scopes)) {
      if (BUILTIN_SCOPES.has(name)) {
        problems.push([name, -1, `scope "${name}" is built in and cannot be redefined`]);
        continue;
      }
      const compiled: CompiledRule[] = [];
      texts.forEach((text, i) => {
        const r = compileRule(name, text);
        if (typeof r === 'string') problems.push([name, i, r]);
        else compiled.push(r);
      });
      catalog.rules.set(name, compiled);
    }
    return { catalog, problems };
  }

  has(scope: string): boolean {
    return this.rules.has(scope) || BUILTIN_SCOPES.has(scope);
  }

  get names(): string[] {
    return [...this.rules.keys()];
  }

  rulesOf(scope: string): readonly CompiledRule[] {
    return this.rules.get(scope) ?? [];
  }

  grant(scopes: Iterable<string>): Grant {
    const sorted = [...new Set(scopes)].filter((s) => this.has(s)).sort();
    const key = sorted.join(',');
    let g = this.grants.get(key);
    if (!g) {
      const rules = sorted.flatMap((s) => this.rulesOf(s));
      g = {
        scopes: sorted,
        header: key,
        admin: sorted.includes(ADMIN_SCOPE),
        allows: (method, path) => {
          for (const r of rules) if (ruleAllows(r, method, path)) return r;
          return undefined;
        },
      };
      this.grants.set(key, g);
    }
    return g;
  }

  /** Scopes that would allow this request: the "missing permission" a 403 names. */
  scopesAllowing(method: string, path: string): string[] {
    const out: string[] = [];
    for (const [name, rules] of this.rules) if (rules.some((r) => ruleAllows(r, method, path))) out.push(name);
    return out;
  }
}
