import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatewayHello, GatewayProofs } from './gateway-link.js';

const SECRET = 'a-cluster-secret-for-tests';
const line = (hello: string) => hello.trimEnd();

describe('gateway link proofs', () => {
  it('takes a fresh proof once, and refuses a wrong, stale, future or malformed one', () => {
    const proofs = new GatewayProofs(SECRET);
    const now = 1_700_000_000_000;
    const good = line(gatewayHello(SECRET, now));
    assert.ok(proofs.check(good, now + 1_000));
    assert.ok(!proofs.check(good, now + 1_000), 'replayed');
    assert.ok(!proofs.check(line(gatewayHello('another-secret-entirely', now)), now), 'wrong secret');
    assert.ok(!proofs.check(line(gatewayHello(SECRET, now - 61_000)), now), 'stale');
    assert.ok(!proofs.check(line(gatewayHello(SECRET, now + 61_000)), now), 'from the future');
    const [verb, time, nonce, mac] = line(gatewayHello(SECRET, now)).split(' ');
    assert.ok(!proofs.check(`${verb} ${time} ${nonce}`, now), 'no MAC');
    assert.ok(!proofs.check(`${verb} ${Number(time) + 1} ${nonce} ${mac}`, now), 'time changed');
    assert.ok(!proofs.check(`PROXY ${time} ${nonce} ${mac}`, now), 'other verb');
    assert.ok(proofs.check(`${verb} ${time} ${nonce} ${mac}`, now), 'the untouched line still works');
  });
});
