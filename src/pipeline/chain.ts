// A chain: the stages one route kind runs, in order, then its terminal. Built once per route at
// load (pipeline/compile.ts), never assembled per request. The builder's type parameter is the
// context as the stages so far have narrowed it, so a stage that reads what another produces
// (authorize needs identify's principal and limit's answer) only compiles after it: the order
// is checked by the compiler, not by `!` at run time.
import type { RequestContext } from '../vocabulary/context.js';
import type { Stage, Terminal } from '../vocabulary/stage.js';

// Inside a built chain the stages are kept without their types: the builder checked them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStage = Stage<any, any>;

export interface Chain {
  readonly stages: readonly AnyStage[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly terminal: Terminal<any>;
  /** What a WebSocket upgrade meets instead, after the same stages: the tunnel (a dry run: the same report). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly upgrade: Terminal<any>;
}

export class ChainBuilder<Cur extends RequestContext> {
  private constructor(private readonly stages: readonly AnyStage[]) {}

  /** A chain for contexts that are already a `C` (e.g. Routed: after the front stages). */
  static for<C extends RequestContext>(): ChainBuilder<C> {
    return new ChainBuilder<C>([]);
  }

  then<Out extends RequestContext>(stage: Stage<Cur, Out>): ChainBuilder<Cur & Out> {
    return new ChainBuilder<Cur & Out>([...this.stages, stage]);
  }

  end(terminal: Terminal<Cur>, upgrade: Terminal<Cur> = terminal): Chain {
    return { stages: this.stages, terminal, upgrade };
  }

  /** The stages so far, without a terminal (the front stages every request meets). */
  get list(): readonly AnyStage[] {
    return this.stages;
  }
}
