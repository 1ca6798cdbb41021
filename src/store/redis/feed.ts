// What makes a following replica look at Redis: a notification on the channel (fast, but
// pub/sub delivers at most once and not at all to a connection that is down) and a poll of the
// revision every pollInterval (the backstop that bounds how late a change can be seen).
import type { RedisConfig } from '../../config/schema.js';
import { connect, disconnect, type Redis } from './client.js';

export class Wakeups {
  private readonly timer: NodeJS.Timeout;
  private readonly subscriber: Redis | undefined;

  /** `subscriber`: the connection name of the pub/sub connection, or undefined for none (poll only). */
  constructor(config: RedisConfig, channel: string, subscriber: string | undefined, wake: () => void) {
    this.timer = setInterval(wake, config.pollInterval);
    this.timer.unref();
    if (subscriber === undefined) return;
    this.subscriber = connect(config, 'subscriber', subscriber);
    this.subscriber.on('message', wake);
    // Re-subscribed after a reconnect (ioredis does that); whatever was published meanwhile is
    // lost, so look at once rather than at the next poll.
    this.subscriber.on('ready', wake);
    this.subscriber.subscribe(channel).catch(() => undefined);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.subscriber) await disconnect(this.subscriber);
  }
}
