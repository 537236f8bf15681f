// The throttling tables on their own: address grouping, bounded size, and eviction order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressKey, LoginThrottle, networkKey, WindowCounter } from './throttle.js';

describe('login throttle tables', () => {
  it('groups IPv6 by /64 and /48, IPv4 by address and /24', () => {
    assert.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:db8:1:2:ffff:1:2:3'));
    assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(networkKey('2001:db8:1:2::1'), networkKey('2001:db8:1:ffff::1'));
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(networkKey('192.0.2.7'), '192.0.2.0/24');
  });

  it('stays bounded and evicts the least recently counted entry first', () => {
    const counter = new WindowCounter(60_000, 3);
    counter.add('hot');
    counter.add('a');
    counter.add('hot'); // refreshed: now the most recent
    counter.add('b');
    counter.add('c'); // evicts 'a', the least recently counted
    assert.equal(counter.size, 3);
    assert.equal(counter.count('a'), 0);
    assert.equal(counter.count('hot'), 2);
  });

  it('forgets counts after the window', () => {
    let now = 0;
    const counter = new WindowCounter(1000, 10, () => now);
    counter.add('k');
    now = 999;
    assert.equal(counter.add('k'), 2);
    now = 1000;
    assert.equal(counter.count('k'), 0);
  });

  it('keeps an account throttled while addresses rotate past the table size', () => {
    const throttle = new LoginThrottle({
      authFailuresPerIp: 10,
      authFailuresPerAccount: 5,
      authFailuresPerNetwork: 1000,
      lockoutSeconds: 60,
      authThrottleEntries: 100,
      authKnownAddressHours: 1,
    });
    for (let i = 0; i < 1000; i++) throttle.failed('bob@example.com', `2001:db8:${i.toString(16)}::1`);
    assert.ok(throttle.blocked('bob@example.com', '2001:db8:ffff::1'));
    assert.ok(!throttle.blocked('alice@example.com', '2001:db8:ffff::1'));
  });
});
