"""Plain-Python reference implementations, written independently of rlinf_algos, for the tests."""

from __future__ import annotations


def gae_loop(rewards, values, mask, gamma, lam, terminated=None, truncated=None, truncated_values=None, last_values=None):
    """Per-row, per-step GAE over lists of floats; masked steps are skipped entirely."""
    out = []
    for i, (r_row, v_row, m_row) in enumerate(zip(rewards, values, mask, strict=True)):
        steps = [t for t in range(len(r_row)) if m_row[t]]
        adv = [0.0] * len(r_row)
        carry = 0.0
        next_v = last_values[i] if last_values is not None else 0.0
        for t in reversed(steps):
            term = bool(terminated[i][t]) if terminated is not None else False
            trunc = bool(truncated[i][t]) if truncated is not None else False
            boot = truncated_values[i][t] if trunc else next_v
            delta = r_row[t] + (0.0 if term else gamma * boot) - v_row[t]
            a = delta + (0.0 if (term or trunc) else gamma * lam * carry)
            adv[t] = a
            carry = a
            next_v = v_row[t]
        out.append(adv)
    return out


def discounted_loop(rewards, mask, gamma):
    out = []
    for r_row, m_row in zip(rewards, mask, strict=True):
        ret = [0.0] * len(r_row)
        running = 0.0
        for t in reversed(range(len(r_row))):
            if m_row[t]:
                running = r_row[t] + gamma * running
                ret[t] = running
        out.append(ret)
    return out
