// Membership (DESIGN.md): every node and gateway writes a heartbeat with its state and load
// figures to the store every second; anyone reading the store sees who is alive. A member
// obeys states an operator requests (drain/undrain) at its next beat. A requested 'stopping'
// or 'restarting' goes to the member's stop listener (the server closes gracefully; the CLI
// then exits 0 for a stop and EXIT_RESTART for a restart, so the supervisor starts it again).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Cluster, LoadFigures, Member, MemberKind, MemberState } from '../store/types.js';

/** What an operator's stop request asks for. */
export type StopRequest = 'stop' | 'restart';

/**
 * Exit code of a node that stopped to be restarted (EX_TEMPFAIL): a supervisor with
 * Restart=on-failure (systemd) or `quill start --nodes` starts it again; after a plain stop
 * the node exits 0 and stays down.
 */
export const EXIT_RESTART = 75;
import type { Logger } from '../util/logger.js';

/** Missed beats after which a member counts as dead. */
export const DEAD_AFTER_MS = 3_000;
/** Dead members are forgotten after this long. */
const FORGET_AFTER_MS = 60 * 60_000;

export function isAlive(member: Pick<Member, 'beatAt'>, now = Date.now()): boolean {
  return now - member.beatAt.getTime() <= DEAD_AFTER_MS;
}

export interface MemberInfo {
  id: string;
  kind: MemberKind;
  version: string;
  addresses: Record<string, string>;
}

/** Samples this process's load: event-loop delay and CPU since the last sample, RSS now. */
export class LoadSampler {
  private readonly delay = monitorEventLoopDelay({ resolution: 20 });
  private lastCpu = process.cpuUsage();
  private lastAt = process.hrtime.bigint();

  constructor() {
    this.delay.enable();
  }

  sample(connections: Record<string, number>, queueDepth?: number): LoadFigures {
    const now = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.lastCpu);
    const elapsedUs = Number(now - this.lastAt) / 1000;
    const figures: LoadFigures = {
      connections,
      eventLoopDelayMs: Number.isNaN(this.delay.mean) ? 0 : Math.round(this.delay.mean / 1e4) / 100,
      cpuPercent: elapsedUs > 0 ? Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 10 : 0,
      rssBytes: process.memoryUsage.rss(),
    };
    if (queueDepth !== undefined) figures.queueDepth = queueDepth;
    this.delay.reset();
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    return figures;
  }

  stop(): void {
    this.delay.disable();
  }
}

export class Membership {
  private timer: NodeJS.Timeout | undefined;
  private readonly sampler = new LoadSampler();
  private readonly startedAt = new Date();
  private beats = 0;
  private current: MemberState = 'active';
  private readonly listeners = new Set<(state: MemberState) => void>();
  private readonly stopListeners = new Set<(request: StopRequest) => void>();
  private stopRequested = false;

  constructor(
    private readonly store: Cluster,
    private readonly info: MemberInfo,
    private readonly connections: () => Record<string, number>,
    private readonly logger: Logger,
    private readonly intervalMs = 1_000,
  ) {}

  get state(): MemberState {
    return this.current;
  }

  onStateChange(listener: (state: MemberState) => void): void {
    this.listeners.add(listener);
  }

  /** Called once when an operator asks this member to stop or restart. */
  onStopRequest(listener: (request: StopRequest) => void): void {
    this.stopListeners.add(listener);
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  private setState(state: MemberState): void {
    if (state === this.current) return;
    this.current = state;
    this.logger.info({ member: this.info.id, state }, 'member state changed');
    for (const listener of this.listeners) listener(state);
  }

  /** One heartbeat; a store error is logged and the next beat tries again. */
  async beat(): Promise<void> {
    try {
      const requested = await this.store.heartbeat({
        ...this.info,
        state: this.current,
        load: this.sampler.sample(this.connections()),
        startedAt: this.startedAt,
      });
      if ((requested === 'stopping' || requested === 'restarting') && this.stopListeners.size > 0) {
        if (!this.stopRequested && this.current !== 'stopping') await this.obeyStop(requested === 'restarting' ? 'restart' : 'stop');
      } else if (requested && requested !== 'restarting' && requested !== this.current && this.current !== 'stopping') {
        this.setState(requested);
        await this.store.heartbeat({ ...this.info, state: this.current, load: this.sampler.sample(this.connections()), startedAt: this.startedAt });
      }
      if (++this.beats % 60 === 1) await this.forgetDead();
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'heartbeat failed');
    }
  }

  private async obeyStop(request: StopRequest): Promise<void> {
    this.stopRequested = true;
    // The request is consumed: started again under the same id, the member must not stop at once.
    await this.store.requestMemberState(this.info.id, null);
    this.logger.info({ member: this.info.id, request }, 'operator asked this member to stop');
    for (const listener of this.stopListeners) listener(request);
  }

  private async forgetDead(): Promise<void> {
    const now = Date.now();
    for (const member of await this.store.listMembers()) {
      if (now - member.beatAt.getTime() > FORGET_AFTER_MS) await this.store.removeMember(member.id);
    }
  }

  /** Says 'stopping' once, then leaves the membership. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.setState('stopping');
    try {
      await this.beat();
      await this.store.removeMember(this.info.id);
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'could not leave the membership');
    }
    this.sampler.stop();
  }
}
