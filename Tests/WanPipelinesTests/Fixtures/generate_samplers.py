#!/usr/bin/env python3
"""Writes samplers_expected.json, the sampler goldens of WanPipelinesTests (SamplerTests.swift).

Needs only NumPy (no PyTorch):

    python3 Tests/WanPipelinesTests/Fixtures/generate_samplers.py

The output is byte-identical from run to run.

What it contains, all computed from the OFFICIAL Wan2.1 formulas (GitHub Wan-Video/Wan2.1, commit 9737cba):

* "schedules": the sigma / timestep grids of `FlowUniPCMultistepScheduler.set_timesteps(N, shift=s)` (grid
  "unipc": sigma_max = float32(0.999), pre-shift sigmas `np.linspace(sigma_max, 0, N + 1)[:-1]`) and of
  `get_sampling_sigmas(N, s)` + `retrieve_timesteps(sigmas=...)` of the DPM++ path (grid "dpm": pre-shift sigmas
  `np.linspace(1, 0, N + 1)[:N]`), built with np.linspace exactly as the official code does: the N + 1 sigmas as
  stored by the official code (float32, written as the exact float64 value of each float32) and the N integer
  model timesteps `int64(1000 * sigma)` taken from the float64 sigmas (before the float32 cast).

* "trajectories": whole sampling runs with synthetic models, for the solvers
    - "unipc": FlowUniPCMultistepScheduler (solver_order 2, bh2, predict_x0, lower_order_final, no corrector
      disabled, final sigma 0): `step()`, `multistep_uni_p_bh_update`, `multistep_uni_c_bh_update` transcribed
      below (order-2 predictor with the fixed rho 0.5, order-1 corrector with rho 0.5, order-2 corrector with
      `linalg.solve`).
    - "dpm++": FlowDPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint, lower_order_final, final sigma 0,
      euler_at_final False): `step()`, `dpm_solver_first_order_update`, `multistep_dpm_solver_second_order_update`
      transcribed below; sigma_0 = 1 gives lambda_0 = -inf, handled by IEEE infinities exactly like PyTorch does.
    - "euler": x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v_i on the UniPC grid (not in the official repo).
  and the models
    - "scalar": v(x, sigma) = x - 0.5 * sigma * x (elementwise),
    - "linear": v(x, sigma) = A x with a fixed random matrix A (stored in the file),
    - "cfg":    classifier-free guidance of two linear maps, v = B x + g * (A x - B x) with g = 5
               (v_uncond = B x, v_cond = A x).
  for N in {1, 2, 3, 4, 10, 50} at shift 5 (plus shift 3 and 8 for N = 10), from the same float32 initial sample
  x0 (stored). The reference runs in float64 (samples, model outputs and every coefficient; the sigmas are the
  official float32 values), the model sees the float32 sigma. Stored: the samples the model is evaluated on
  (x_0 ... x_{N-1}) and the final sample x_N, for every step when N <= 10, only x_N for N = 50.

* "noise": the project's own seeded normal generator (SeededNoise in Sources/WanPipelines/Sampling/Noise.swift),
  re-implemented here operation by operation in float64 (Python floats are IEEE doubles, no fused multiply-add):
  the first values for a few seeds, as exact float32 values.

A float32 emulation of the official solvers (every scalar and tensor operation in float32, as PyTorch runs them)
is also run, only to print how far the float32 arithmetic of the official code lies from the float64 reference
(the Swift solvers compute in float32 like the official code); nothing of it is written.
"""
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "samplers_expected.json")

NUM_TRAIN_TIMESTEPS = 1000


# ----------------------------------------------------------------------------------------------------------------
# Schedules (official fm_solvers_unipc.py / fm_solvers.py)
# ----------------------------------------------------------------------------------------------------------------

def unipc_sigma_max():
    # FlowUniPCMultistepScheduler.__init__ with shift=1 (text2video.py): sigmas of the training grid in float32,
    # the identity shift `1 * s / (1 + 0 * s)`, sigma_max = sigmas[0].item().
    alphas = np.linspace(1, 1 / NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS)[::-1].copy()
    sigmas = (1.0 - alphas).astype(np.float32)
    sigmas = 1 * sigmas / (1 + (1 - 1) * sigmas)
    return float(sigmas[0]), float(sigmas[-1])


def schedule(grid, steps, shift):
    """Returns (float32 sigmas with the final 0, int64 timesteps), as the official set_timesteps stores them."""
    if grid == "unipc":
        sigma_max, sigma_min = unipc_sigma_max()
        sigmas = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]
        sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    elif grid == "dpm":
        sigma = np.linspace(1, 0, steps + 1)[:steps]                 # get_sampling_sigmas
        sigma = (shift * sigma / (1 + (shift - 1) * sigma))
        sigmas = np.asarray(sigma)
        config_shift = 1                                             # set_timesteps(sigmas=...) with config.shift 1
        sigmas = config_shift * sigmas / (1 + (config_shift - 1) * sigmas)
    else:
        raise ValueError(grid)
    timesteps = (sigmas * NUM_TRAIN_TIMESTEPS).astype(np.int64)     # torch .to(int64) truncates like astype
    sigmas = np.concatenate([sigmas, [0]]).astype(np.float32)
    return sigmas, timesteps


# ----------------------------------------------------------------------------------------------------------------
# Solvers, transcribed from the official code. `f` is the float type of every scalar and array (np.float64 for the
# reference, np.float32 for the emulation of PyTorch's float32 arithmetic).
# ----------------------------------------------------------------------------------------------------------------

class UniPC:
    def __init__(self, sigmas, f):
        self.f = f
        self.sigmas = sigmas.astype(f)
        self.timesteps_len = len(sigmas) - 1
        self.solver_order = 2
        self.model_outputs = [None, None]
        self.lower_order_nums = 0
        self.last_sample = None
        self.step_index = 0
        self.this_order = None

    def lam(self, sigma):
        alpha = self.f(1) - sigma
        with np.errstate(divide="ignore"):
            return np.log(alpha) - np.log(sigma)

    def convert(self, v, x):
        return x - self.sigmas[self.step_index] * v

    def predictor(self, x, order):
        f = self.f
        m0 = self.model_outputs[-1]
        sigma_t, sigma_s0 = self.sigmas[self.step_index + 1], self.sigmas[self.step_index]
        alpha_t = f(1) - sigma_t
        lambda_t, lambda_s0 = self.lam(sigma_t), self.lam(sigma_s0)
        h = lambda_t - lambda_s0
        rks, d1s = [], []
        for i in range(1, order):
            si = self.step_index - i
            mi = self.model_outputs[-(i + 1)]
            rk = (self.lam(self.sigmas[si]) - lambda_s0) / h
            rks.append(rk)
            d1s.append((mi - m0) / rk)
        hh = -h
        h_phi_1 = np.expm1(hh)
        b_h = np.expm1(hh)
        if d1s:
            rhos_p = [f(0.5)]                                       # "for order 2, we use a simplified version"
            pred_res = rhos_p[0] * d1s[0]
        else:
            pred_res = 0
        x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
        return (x_t_ - alpha_t * b_h * pred_res).astype(f)

    def corrector(self, model_t, last_sample, order):
        f = self.f
        m0 = self.model_outputs[-1]
        x = last_sample
        sigma_t, sigma_s0 = self.sigmas[self.step_index], self.sigmas[self.step_index - 1]
        alpha_t = f(1) - sigma_t
        lambda_t, lambda_s0 = self.lam(sigma_t), self.lam(sigma_s0)
        h = lambda_t - lambda_s0
        rks, d1s = [], []
        for i in range(1, order):
            si = self.step_index - (i + 1)
            mi = self.model_outputs[-(i + 1)]
            rk = (self.lam(self.sigmas[si]) - lambda_s0) / h
            rks.append(rk)
            d1s.append((mi - m0) / rk)
        rks.append(f(1.0))
        rks = np.array(rks, dtype=f)
        hh = -h
        h_phi_1 = np.expm1(hh)
        h_phi_k = h_phi_1 / hh - f(1)
        factorial_i = 1
        b_h = np.expm1(hh)
        big_r, b = [], []
        for i in range(1, order + 1):
            big_r.append(np.power(rks, i - 1))
            b.append(h_phi_k * f(factorial_i) / b_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - f(1) / f(factorial_i)
        big_r = np.stack(big_r).astype(f)
        b = np.array(b, dtype=f)
        if order == 1:
            rhos_c = np.array([0.5], dtype=f)
        else:
            rhos_c = np.linalg.solve(big_r, b).astype(f)
        x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
        corr_res = rhos_c[0] * d1s[0] if d1s else 0
        d1_t = model_t - m0
        return (x_t_ - alpha_t * b_h * (corr_res + rhos_c[-1] * d1_t)).astype(f)

    def step(self, v, x):
        use_corrector = self.step_index > 0 and self.last_sample is not None
        m = self.convert(v, x)
        if use_corrector:
            x = self.corrector(m, self.last_sample, self.this_order)
        self.model_outputs[0] = self.model_outputs[1]
        self.model_outputs[-1] = m
        this_order = min(self.solver_order, self.timesteps_len - self.step_index)   # lower_order_final
        self.this_order = min(this_order, self.lower_order_nums + 1)               # warm-up
        self.last_sample = x
        with np.errstate(divide="ignore", invalid="ignore"):
            prev = self.predictor(x, self.this_order)
        if self.lower_order_nums < self.solver_order:
            self.lower_order_nums += 1
        self.step_index += 1
        return prev


class DPMpp:
    def __init__(self, sigmas, f):
        self.f = f
        self.sigmas = sigmas.astype(f)
        self.timesteps_len = len(sigmas) - 1
        self.model_outputs = [None, None]
        self.lower_order_nums = 0
        self.step_index = 0

    def lam(self, sigma):
        alpha = self.f(1) - sigma
        with np.errstate(divide="ignore"):
            return np.log(alpha) - np.log(sigma)

    def first_order(self, m0, x):
        f = self.f
        sigma_t, sigma_s = self.sigmas[self.step_index + 1], self.sigmas[self.step_index]
        alpha_t = f(1) - sigma_t
        h = self.lam(sigma_t) - self.lam(sigma_s)
        return (sigma_t / sigma_s) * x - (alpha_t * (np.exp(-h) - f(1.0))) * m0

    def second_order(self, x):
        f = self.f
        sigma_t = self.sigmas[self.step_index + 1]
        sigma_s0 = self.sigmas[self.step_index]
        sigma_s1 = self.sigmas[self.step_index - 1]
        alpha_t = f(1) - sigma_t
        lambda_t, lambda_s0, lambda_s1 = self.lam(sigma_t), self.lam(sigma_s0), self.lam(sigma_s1)
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        r0 = h_0 / h
        d0, d1 = m0, (f(1.0) / r0) * (m0 - m1)
        return ((sigma_t / sigma_s0) * x - (alpha_t * (np.exp(-h) - f(1.0))) * d0
                - f(0.5) * (alpha_t * (np.exp(-h) - f(1.0))) * d1)

    def step(self, v, x):
        lower_order_final = self.step_index == self.timesteps_len - 1   # final_sigmas_type "zero"
        m = x - self.sigmas[self.step_index] * v
        self.model_outputs[0] = self.model_outputs[1]
        self.model_outputs[-1] = m
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.lower_order_nums < 1 or lower_order_final:
                prev = self.first_order(m, x)
            else:
                prev = self.second_order(x)
        if self.lower_order_nums < 2:
            self.lower_order_nums += 1
        self.step_index += 1
        return prev.astype(self.f)


class Euler:
    def __init__(self, sigmas, f):
        self.f = f
        self.sigmas = sigmas.astype(f)
        self.step_index = 0

    def step(self, v, x):
        dt = self.sigmas[self.step_index + 1] - self.sigmas[self.step_index]
        self.step_index += 1
        return (x + dt * v).astype(self.f)


SOLVERS = {"unipc": (UniPC, "unipc"), "dpm++": (DPMpp, "dpm"), "euler": (Euler, "unipc")}


def make_model(kind, a, b, guidance, f):
    a = a.astype(f)
    b = b.astype(f)

    def model(x, sigma):
        if kind == "scalar":
            return x - f(0.5) * sigma * x
        if kind == "linear":
            return a @ x
        if kind == "cfg":
            cond, uncond = a @ x, b @ x
            return uncond + f(guidance) * (cond - uncond)
        raise ValueError(kind)
    return model


def run(solver_name, model_kind, steps, shift, x0, a, b, guidance, f):
    solver_cls, grid = SOLVERS[solver_name]
    sigmas, _ = schedule(grid, steps, shift)
    solver = solver_cls(sigmas, f)
    model = make_model(model_kind, a, b, guidance, f)
    x = x0.astype(f)
    visited = []
    for i in range(steps):
        visited.append(x.copy())
        v = model(x, f(sigmas[i]))
        x = solver.step(v, x)
    return visited, x


# ----------------------------------------------------------------------------------------------------------------
# The project's seeded noise (documented in Sources/WanPipelines/Sampling/Noise.swift)
# ----------------------------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def splitmix64(seed, n):
    """The n-th output (0-based) of SplitMix64 seeded with `seed`."""
    z = (seed + (n + 1) * GOLDEN_GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


SQRT2 = 1.4142135623730951
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
HALF_PI = 1.5707963267948966
# (-1)^k / (2k + 1)!  and  (-1)^k / (2k)!  as correctly rounded doubles (Python int / int division rounds
# correctly); the Swift code spells the same doubles as literals.
SIN_C = [(-1) ** k / math.factorial(2 * k + 1) for k in range(10)]
COS_C = [(-1) ** k / math.factorial(2 * k) for k in range(11)]


def det_log(u):
    """ln(u) for u > 0 with +, -, *, / only (deterministic on every IEEE machine)."""
    m, e = math.frexp(u)          # u = m * 2^e, m in [0.5, 1)
    m *= 2.0                      # m in [1, 2)
    e -= 1
    if m > SQRT2:
        m *= 0.5
        e += 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    # atanh series: ln(m) = 2 s (1 + s^2/3 + s^4/5 + ... + s^22/23)
    acc = 1.0 / 23.0
    for k in range(10, -1, -1):
        acc = acc * s2 + 1.0 / (2 * k + 1)
    ln_m = 2.0 * s * acc
    return e * LN2_HI + (ln_m + e * LN2_LO)


def det_sincos_quarter(r):
    """(sin, cos) of x = r * pi/2 for r in [-0.5, 0.5] (Taylor polynomials, Horner in x^2)."""
    x = r * HALF_PI
    x2 = x * x
    s = SIN_C[9]
    for k in range(8, -1, -1):
        s = s * x2 + SIN_C[k]
    s = s * x
    c = COS_C[10]
    for k in range(9, -1, -1):
        c = c * x2 + COS_C[k]
    return s, c


def noise_pair(seed, p):
    """The two normals of pair p: elements 2p (r cos) and 2p + 1 (r sin), as float64 before the float32 cast."""
    k1 = splitmix64(seed, 2 * p) >> 11
    k2 = splitmix64(seed, 2 * p + 1) >> 11
    u1 = float(k1 + 1) * 2.0 ** -53                  # (0, 1]
    r = math.sqrt(-2.0 * det_log(u1))
    q = (k2 + (1 << 50)) >> 51                       # nearest quarter turn, 0...4
    rr = float(k2 - (q << 51)) * 2.0 ** -51          # remainder in quarter turns, [-0.5, 0.5]
    s, c = det_sincos_quarter(rr)
    q &= 3
    if q == 0:
        cos_t, sin_t = c, s
    elif q == 1:
        cos_t, sin_t = -s, c
    elif q == 2:
        cos_t, sin_t = -c, -s
    else:
        cos_t, sin_t = s, -c
    return r * cos_t, r * sin_t


def noise(seed, count):
    out = []
    for p in range((count + 1) // 2):
        z0, z1 = noise_pair(seed, p)
        out.append(float(np.float32(z0)))
        if 2 * p + 1 < count:
            out.append(float(np.float32(z1)))
    return out


def check_noise_math():
    """The deterministic log / sin / cos against the platform's libm (accuracy, not determinism)."""
    rng = np.random.default_rng(7)
    worst_log = 0.0
    for k in list(rng.integers(1, 1 << 53, 20000)) + [1, 2, 3, (1 << 53) - 1, 1 << 53, 1 << 52, 6369051672525773]:
        u = float(int(k)) * 2.0 ** -53
        ref = math.log(u)
        got = det_log(u)
        worst_log = max(worst_log, abs(got - ref) / max(abs(ref), 1e-300))
    worst_trig = 0.0
    for k in list(rng.integers(0, 1 << 53, 20000)) + [0, 1, (1 << 50), (1 << 51), (1 << 53) - 1]:
        k = int(k)
        q = (k + (1 << 50)) >> 51
        rr = float(k - (q << 51)) * 2.0 ** -51
        s, c = det_sincos_quarter(rr)
        theta = 2 * math.pi * (k * 2.0 ** -53)
        q &= 3
        cos_t, sin_t = [(c, s), (-s, c), (-c, -s), (s, -c)][q]
        worst_trig = max(worst_trig, abs(cos_t - math.cos(theta)), abs(sin_t - math.sin(theta)))
    assert worst_log < 1e-15, worst_log
    assert worst_trig < 1e-15, worst_trig
    # SplitMix64 reference value (seed 0, first output) from the published algorithm.
    assert splitmix64(0, 0) == 0xE220A8397B1DCDAF
    return worst_log, worst_trig


# ----------------------------------------------------------------------------------------------------------------

def f32_exact(values):
    """float32 values written as the exact float64 of each (repr round-trips)."""
    return [float(np.float32(v)) for v in np.asarray(values).ravel()]


def f64(values):
    """float64 reference values, rounded to 12 significant digits (far below the tests' 1e-5 tolerance)."""
    return [float(f"{float(v):.12g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main():
    rng = np.random.default_rng(20250214)
    n = 8
    x0 = rng.standard_normal(n).astype(np.float32)
    a = (0.6 * np.eye(n) + 0.4 * rng.standard_normal((n, n)) / math.sqrt(n)).astype(np.float32)
    b = (0.3 * np.eye(n) + 0.4 * rng.standard_normal((n, n)) / math.sqrt(n)).astype(np.float32)
    guidance = 5.0

    schedules = []
    for grid, steps, shift in [("unipc", 1, 5.0), ("unipc", 2, 5.0), ("unipc", 3, 5.0), ("unipc", 4, 5.0),
                               ("unipc", 10, 5.0), ("unipc", 50, 5.0), ("unipc", 50, 8.0), ("unipc", 50, 3.0),
                               ("unipc", 40, 3.0), ("unipc", 40, 5.0), ("unipc", 50, 16.0), ("unipc", 50, 1.0),
                               ("unipc", 25, 12.0), ("unipc", 100, 12.0), ("unipc", 200, 8.0), ("unipc", 7, 0.5),
                               ("dpm", 1, 5.0), ("dpm", 2, 5.0), ("dpm", 4, 5.0), ("dpm", 10, 5.0),
                               ("dpm", 50, 5.0), ("dpm", 40, 3.0), ("dpm", 50, 8.0), ("dpm", 7, 0.5)]:
        sigmas, timesteps = schedule(grid, steps, shift)
        schedules.append({"grid": grid, "steps": steps, "shift": shift,
                          "sigmas": f32_exact(sigmas), "timesteps": [int(t) for t in timesteps]})

    trajectories = []
    worst = 0.0
    for solver in ["unipc", "dpm++", "euler"]:
        for model_kind in ["scalar", "linear", "cfg"]:
            for steps, shift in [(1, 5.0), (2, 5.0), (3, 5.0), (4, 5.0), (10, 5.0), (10, 3.0), (10, 8.0),
                                 (50, 5.0)]:
                visited, final = run(solver, model_kind, steps, shift, x0, a, b, guidance, np.float64)
                v32, final32 = run(solver, model_kind, steps, shift, x0, a, b, guidance, np.float32)
                err = rel_err(final32, final)
                for u, w in zip(v32, visited):
                    err = max(err, rel_err(u, w))
                worst = max(worst, err)
                print(f"{solver:6s} {model_kind:6s} N={steps:3d} s={shift:4.1f}: float32 emulation vs float64 "
                      f"{err:.2e}", file=sys.stderr)
                entry = {"solver": solver, "model": model_kind, "steps": steps, "shift": shift,
                         "final": f64(final)}
                if steps <= 10:
                    entry["visited"] = [f64(v) for v in visited]
                trajectories.append(entry)
    print(f"worst float32-emulation deviation: {worst:.2e}", file=sys.stderr)

    log_err, trig_err = check_noise_math()
    print(f"deterministic log rel err {log_err:.1e}, sin/cos abs err {trig_err:.1e}", file=sys.stderr)
    noise_entries = []
    for seed, count in [(42, 64), (0, 16), (1, 16), (2**64 - 1, 16), (123456789, 33)]:
        noise_entries.append({"seed": str(seed), "count": count, "values": noise(seed, count)})

    doc = {
        "generator": "generate_samplers.py",
        "x0": f32_exact(x0),
        "A": f32_exact(a),
        "B": f32_exact(b),
        "guidance": guidance,
        "schedules": schedules,
        "trajectories": trajectories,
        "noise": noise_entries,
    }
    with open(OUT, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
