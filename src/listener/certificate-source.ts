// TLS material behind one interface, for the public listener, the client CAs and CRLs, and the
// admin listener (ghostunnel's certloader): loaded at start, reloaded when its files change or
// on SIGHUP, and on a failed reload the previous material keeps serving. A source derived from
// others (a listener's secure contexts from its identity and the client trust) is rebuilt when
// any of them changes, with the same rule.

export interface CertificateSource<T> {
  readonly name: string;
  current(): T;
  /** The files this material was read from, to watch. */
  files(): readonly string[];
  /** Reads again; on failure the error is returned and the previous material stays current. */
  reload(): { ok: true } | { ok: false; error: unknown };
  /** Called with the new material after every successful (re)load. */
  onChange(fn: (value: T) => void): () => void;
}

abstract class BaseSource<T> implements CertificateSource<T> {
  private readonly listeners = new Set<(value: T) => void>();
  protected abstract value: T;
  constructor(readonly name: string) {}
  abstract files(): readonly string[];
  protected abstract build(): T;

  current(): T {
    return this.value;
  }

  reload(): { ok: true } | { ok: false; error: unknown } {
    let next: T;
    try {
      next = this.build();
    } catch (error) {
      return { ok: false, error };
    }
    this.value = next;
    for (const fn of this.listeners) fn(next);
    return { ok: true };
  }

  onChange(fn: (value: T) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** Material read from files by `load` (which throws TlsMaterialError on anything unusable). */
export class FileSource<T extends { readonly files: readonly string[] }> extends BaseSource<T> {
  protected value: T;
  constructor(
    name: string,
    private readonly load: () => T,
  ) {
    super(name);
    this.value = load(); // at start a failure is the caller's: nothing to fall back on yet
  }
  protected build(): T {
    return this.load();
  }
  files(): readonly string[] {
    return this.value.files;
  }
}

/** Material composed from other sources; rebuilt (or kept) whenever one of them changes. */
export class DerivedSource<T, A, B> extends BaseSource<T> {
  protected value: T;
  constructor(
    name: string,
    private readonly a: CertificateSource<A>,
    private readonly b: CertificateSource<B>,
    private readonly compose: (a: A, b: B) => T,
    onError: (error: unknown) => void,
  ) {
    super(name);
    this.value = compose(a.current(), b.current());
    const rebuild = () => {
      const r = this.reload();
      if (!r.ok) onError(r.error);
    };
    a.onChange(rebuild);
    b.onChange(rebuild);
  }
  protected build(): T {
    return this.compose(this.a.current(), this.b.current());
  }
  files(): readonly string[] {
    return [...this.a.files(), ...this.b.files()];
  }
}

/**
 * The material of whichever source it follows now. A reload of keygate.yaml builds every
 * source again; a listener that outlives the reload (the admin listener, whose settings change
 * only on restart) follows the new source through this one instead of staying subscribed to
 * the first, whose files nobody watches any more.
 */
export class RelaySource<T> extends BaseSource<T> {
  protected value: T;
  private unsubscribe: () => void;
  constructor(
    name: string,
    private source: CertificateSource<T>,
  ) {
    super(name);
    this.value = source.current();
    this.unsubscribe = this.subscribe(source);
  }
  /** Follows `next` from now on, and passes its material on at once. */
  follow(next: CertificateSource<T>): void {
    if (next === this.source) return;
    this.unsubscribe();
    this.source = next;
    this.unsubscribe = this.subscribe(next);
    this.reload();
  }
  private subscribe(source: CertificateSource<T>): () => void {
    return source.onChange(() => this.reload());
  }
  protected build(): T {
    return this.source.current();
  }
  files(): readonly string[] {
    return this.source.files();
  }
}
