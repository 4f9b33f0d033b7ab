"""A big provider's outbound servers, listed as known good, deliver to our MX: quiet.

Live, no AUTH, to our MX. Two outbound servers of a big provider (198.19.90.10 and .11,
`out-N.bigmail.test`; 198.19.90.0/24 is in `[detect.incoming] known_good_networks` of this
harness's configuration) deliver their users' mail to ours, one recipient per message, in
connections of 10: 198.19.90.10 18 delivered and 22 refused as unknown (its users writing to an
old address book of ours), 198.19.90.11 12 delivered and 8 refused. Without the listing the rules
would fire (the host: 22 >= `min_unknown` at 55%; its /24: 30 from 2 addresses at 50%).
Documented rule (docs/DETECTION.md "Incoming mail", known good senders): a listed network is
never reported → both addresses and the /24 stay quiet.
"""
import harness
import ordinary

D = harness.DOMAIN
SERVERS = {"198.19.90.10": (18, 22), "198.19.90.11": (12, 8)}


def drive(d):
    for n, (ip, (good, bad)) in enumerate(sorted(SERVERS.items())):
        rcpts = [ordinary.USERS[(n * 11 + k) % len(ordinary.USERS)] for k in range(good)]
        rcpts += ["old-contact%d-%d@%s" % (n, k, D) for k in range(bad)]
        # Interleaved as real traffic is: unknowns among the delivered ones.
        # (a permutation: 7 is prime to 40 and 20).
        rcpts = [r for _, r in sorted(enumerate(rcpts), key=lambda x: (x[0] * 7) % len(rcpts))]
        msgs = [("person%d@bigmail.test" % k, [r]) for k, r in enumerate(rcpts)]
        for i in range(0, len(msgs), 10):
            d.mx_send(ip, "out-%d.bigmail.test" % (n + 1), msgs[i:i + 10])


def expect(x):
    for ip in SERVERS:
        x.quiet("client", ip, "a listed big provider's outbound server")
    x.quiet("network", "198.19.90.0/24", "a listed big provider's network")
