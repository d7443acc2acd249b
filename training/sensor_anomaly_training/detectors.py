"""The detectors `train.py` can fit, each exported to the one model contract (models/README.md).

Every graph takes raw window features `[N, F]` and returns `contributions [N, F]` whose row
sum is the anomaly score, so the Rust scorer serves any of them with no code change. Each
detector also has a `reference(X)`: the same contributions computed by numpy/scikit-learn
outside ONNX, which the tests hold the exported graph to.

- autoencoder: contributions = (z - AE(z))^2 / F, z standardized; `expected` = AE(z) in raw units.
- pca: the combined index phi = T^2 / mean_train(T^2) + Q / mean_train(Q) (Yue & Qin, 2001) of
  a PCA fitted on z, split over features by its complete decomposition: with
  phi = z' Phi z and M = Phi^(1/2), contribution_j = (z M)_j^2 >= 0 (Alcala & Qin, 2009).
  T^2 catches unusual combinations inside the normal subspace, Q (SPE) anything off it.
  `expected` = the PCA reconstruction in raw units.  Halved, so healthy windows average ~1.
- iforest: score = 2^(-E[h(x)] / c(psi)), the anomaly score of Liu et al. (sklearn's
  -score_samples), split over features in proportion to how much each feature did to isolate
  the window: every split on feature j along the window's path in a tree credits j with
  1 / (that path's length), so features that isolate it early and in many trees get the
  score (depth-weighted, in the spirit of DIFFI, Carletti et al. 2020).  Sums to the score.
  No `expected` output: an isolation forest has no notion of the value it expected.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np

OPSET = 17
ML_OPSET = 3
IR_VERSION = 8

from .contract import DETECTORS, EXPECTED_NAME, INPUT_NAME, OUTPUT_NAME, VERSION_PREFIX  # noqa: E402,F401
ACTIVATION = "tanh"


def standardize(X, mean, std):
    return (np.asarray(X, np.float64) - mean.astype(np.float64)) / std.astype(np.float64)


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


# --------------------------------------------------------------------------
# Autoencoder
# --------------------------------------------------------------------------

class _IterationFilter(io.TextIOBase):
    """Forwards sklearn's verbose lines to a logger, only every `every` iterations."""

    def __init__(self, every: int, log):
        self.every, self.buf, self.log = max(1, every), "", log

    def writable(self):
        return True

    def write(self, s):
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.startswith("Iteration "):
                try:
                    it = int(line.split()[1].rstrip(","))
                except (IndexError, ValueError):
                    it = 0
                if it != 1 and it % self.every:
                    continue
                self.log("stage=fit " + line.replace("Iteration ", "iter=").replace(", loss = ", " loss="))
            elif line.strip():
                self.log("stage=fit " + line.strip())
        return len(s)


def corrupt_channels(X, std, feature_channels, feature_stats, rng):
    """Copies of the windows with one channel each made faulty: shifted, stuck or noisy.

    Trained to map these back to the clean windows (a denoising autoencoder), the network learns
    to predict each channel from the others instead of copying it, so a faulty channel's error
    stays on that channel and the per-channel contributions name it.  Works with any subset of
    the stats (mean, std, min, max) per channel.
    """
    Xc = np.asarray(X, np.float64).copy()
    channels = list(dict.fromkeys(feature_channels))
    index = {(c, s): j for j, (c, s) in enumerate(zip(feature_channels, feature_stats))}
    n = Xc.shape[0]
    which = rng.integers(0, len(channels), size=n)
    kind = rng.integers(0, 3, size=n)
    for i in range(n):
        ch = channels[which[i]]
        m, s, lo, hi = (index.get((ch, st)) for st in ("mean", "std", "min", "max"))
        if kind[i] == 0:  # shift (drift, dip, offset)
            ref = next(j for j in (m, lo, hi, s) if j is not None)
            delta = rng.uniform(1.0, 5.0) * std[ref] * rng.choice([-1.0, 1.0])
            for j in (m, lo, hi) if ref != s else (s,):
                if j is not None:
                    Xc[i, j] += delta
        elif kind[i] == 1:  # stuck sensor
            if s is not None:
                Xc[i, s] = 0.0
            if m is not None:
                for j in (lo, hi):
                    if j is not None:
                        Xc[i, j] = Xc[i, m]
        else:  # noisier sensor
            k = rng.uniform(3.0, 8.0)
            if s is not None:
                Xc[i, s] *= k
            if m is not None:
                if lo is not None:
                    Xc[i, lo] = Xc[i, m] - (Xc[i, m] - Xc[i, lo]) * k
                if hi is not None:
                    Xc[i, hi] = Xc[i, m] + (Xc[i, hi] - Xc[i, m]) * k
    return Xc


class Autoencoder:
    kind = "autoencoder"
    standardized = True

    def __init__(self, layers, mlp, denoise: bool):
        self.layers = layers  # [(W f32 [in,out], b f32 [out])]
        self.mlp = mlp
        self.denoise = denoise

    @classmethod
    def fit(cls, Z_train, *, seed, hidden=(16, 8, 16), max_iter=200, tol=1e-6, denoise=True,
            X_train=None, std=None, mean=None, feature_channels=None, feature_stats=None,
            log=None):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        Z_input, Z_target = Z_train, Z_train
        if denoise:
            rng = np.random.default_rng(seed)
            Xc = corrupt_channels(X_train, std, feature_channels, feature_stats, rng)
            Z_input = np.vstack([Z_train, standardize(Xc, mean, std)])
            Z_target = np.vstack([Z_train, Z_train])
            if log:
                log(f"stage=fit denoising: {len(Z_train)} clean + {len(Xc)} corrupted rows (one channel each)")
        model = MLPRegressor(hidden_layer_sizes=tuple(hidden), activation=ACTIVATION, solver="adam",
                             random_state=seed, max_iter=max_iter, early_stopping=False,
                             tol=tol, shuffle=True, verbose=log is not None)
        sink = _IterationFilter(max(1, max_iter // 10), log) if log else io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sink):
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(Z_input, Z_target)
        if log:
            log(f"stage=fit done iterations={model.n_iter_} final_loss={model.loss_:.8f}")
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                log(f"stage=fit note: reached max_iter={max_iter} before convergence (tol={tol})")
        layers = [(_f32(W), _f32(b)) for W, b in zip(model.coefs_, model.intercepts_)]
        return cls(layers, model, denoise)

    def summary(self):
        return {"hidden_layers": [int(W.shape[1]) for W, _ in self.layers[:-1]],
                "activation": ACTIVATION, "iterations": int(self.mlp.n_iter_),
                "final_loss": float(self.mlp.loss_), "denoising": bool(self.denoise)}

    def reference(self, Z):
        R = self.mlp.predict(Z)
        return (Z - R) ** 2 / Z.shape[1]

    def graph(self, helper, numpy_helper, F):
        inits = [numpy_helper.from_array(np.array(1.0 / F, np.float32), "inv_num_features")]
        nodes, h, last = [], "z", len(self.layers) - 1
        for i, (W, b) in enumerate(self.layers):
            inits += [numpy_helper.from_array(W, f"layer{i}_W"), numpy_helper.from_array(b, f"layer{i}_b")]
            nodes.append(helper.make_node("MatMul", [h, f"layer{i}_W"], [f"layer{i}_mm"], name=f"layer{i}_matmul"))
            out = "reconstruction" if i == last else f"layer{i}_pre"
            nodes.append(helper.make_node("Add", [f"layer{i}_mm", f"layer{i}_b"], [out], name=f"layer{i}_add"))
            if i != last:  # MLPRegressor's output layer is the identity
                nodes.append(helper.make_node("Tanh", [out], [f"layer{i}_act"], name=f"layer{i}_tanh"))
                h = f"layer{i}_act"
        nodes += [helper.make_node("Sub", ["z", "reconstruction"], ["residual"], name="residual"),
                  helper.make_node("Mul", ["residual", "residual"], ["squared"], name="square"),
                  helper.make_node("Mul", ["squared", "inv_num_features"], [OUTPUT_NAME], name="scale")]
        doc = ("Autoencoder anomaly detector. contributions = (z - AE(z))^2 / F with "
               "z = (features - mean) / std; score = row sum of contributions.")
        return nodes, inits, "reconstruction", doc


# --------------------------------------------------------------------------
# PCA, T^2 and Q
# --------------------------------------------------------------------------

class PCA:
    kind = "pca"
    standardized = True

    def __init__(self, components, eigenvalues, t2_scale, q_scale, variance):
        self.P = components  # float64 [F, k], orthonormal columns
        self.lam = eigenvalues  # float64 [k]
        self.t2_scale, self.q_scale, self.variance = t2_scale, q_scale, variance
        F = components.shape[0]
        proj = self.P @ self.P.T
        # Phi^(1/2) for phi = T2 / (2 t2_scale) + Q / (2 q_scale): the two terms live on
        # orthogonal subspaces, so the square root is taken on each.
        root = (self.P @ np.diag(1.0 / np.sqrt(2.0 * self.lam * t2_scale)) @ self.P.T
                + (np.eye(F) - proj) / math.sqrt(2.0 * q_scale))
        self.M = _f32(root)
        self.proj = _f32(proj)

    @classmethod
    def fit(cls, Z_train, *, variance=0.9, log=None):
        n, F = Z_train.shape
        C = np.cov(Z_train, rowvar=False, ddof=1)
        lam, vec = np.linalg.eigh(C)
        order = np.argsort(lam)[::-1]
        lam, vec = lam[order], vec[:, order]
        ratio = np.cumsum(lam) / lam.sum()
        k = int(np.searchsorted(ratio, variance) + 1)
        k = max(1, min(k, F - 1))  # leave a residual subspace, or Q would be identically 0
        floor = lam[0] * 1e-9
        P, lk = vec[:, :k], np.maximum(lam[:k], floor)
        T = Z_train @ P
        t2 = np.sum(T ** 2 / lk, axis=1)
        q = np.sum((Z_train - T @ P.T) ** 2, axis=1)
        t2_scale = float(max(t2.mean(), 1e-12))
        q_scale = float(max(q.mean(), 1e-12))
        if log:
            log(f"stage=fit pca components={k}/{F} explained={ratio[k - 1]:.4f} "
                f"mean_t2={t2_scale:.4g} mean_q={q_scale:.4g}")
        return cls(P, lk, t2_scale, q_scale, variance)

    def summary(self):
        return {"components": int(self.P.shape[1]), "variance_target": float(self.variance),
                "mean_t2_train": self.t2_scale, "mean_q_train": self.q_scale}

    def reference(self, Z):
        T = Z @ self.P
        t2 = np.sum(T ** 2 / self.lam, axis=1)
        q = np.sum((Z - T @ self.P.T) ** 2, axis=1)
        contrib = (Z @ self.M.astype(np.float64)) ** 2
        # The decomposition must add up to the combined index it explains.
        phi = 0.5 * (t2 / self.t2_scale + q / self.q_scale)
        assert np.allclose(contrib.sum(axis=1), phi, rtol=1e-4, atol=1e-6), "PCA decomposition"
        return contrib

    def graph(self, helper, numpy_helper, F):
        inits = [numpy_helper.from_array(self.M, "pca_root"),
                 numpy_helper.from_array(self.proj, "pca_projection")]
        nodes = [helper.make_node("MatMul", ["z", "pca_root"], ["whitened"], name="whiten"),
                 helper.make_node("Mul", ["whitened", "whitened"], [OUTPUT_NAME], name="square"),
                 helper.make_node("MatMul", ["z", "pca_projection"], ["reconstruction"], name="reconstruct")]
        doc = ("PCA T^2 + Q detector. z = (features - mean) / std; contributions = (z Phi^(1/2))^2, "
               "the complete decomposition of phi = (T^2/mean T^2 + Q/mean Q) / 2; score = row sum.")
        return nodes, inits, "reconstruction", doc


# --------------------------------------------------------------------------
# Isolation Forest
# --------------------------------------------------------------------------

def _average_path_length(n):
    """c(n): the average path length of an unsuccessful BST search (Liu et al.), as sklearn."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _floor_f32(t: float) -> np.float32:
    """The largest float32 <= t, so that x <= t and x <= float32(t) agree for float32 x."""
    r = np.float32(t)
    if float(r) > t:
        r = np.nextafter(r, np.float32(-np.inf))
    return r


class IsolationForest:
    kind = "iforest"
    standardized = False  # trees split raw features; scaling would change nothing
    CREDIT_PRIOR = 1e-6  # keeps the split defined when no tree splits at all

    def __init__(self, forest, n_features):
        self.forest = forest
        self.F = n_features
        self.c_psi = float(_average_path_length([forest.max_samples_])[0])
        self.trees = [self._tree(est.tree_, feats) for est, feats
                      in zip(forest.estimators_, forest.estimators_features_)]

    @classmethod
    def fit(cls, X_train, *, seed, n_estimators=100, max_samples=256, log=None):
        from sklearn.ensemble import IsolationForest as SkIsolationForest

        X32 = _f32(X_train)
        forest = SkIsolationForest(n_estimators=n_estimators, max_samples=min(max_samples, len(X32)),
                                   random_state=seed).fit(X32)
        if log:
            log(f"stage=fit iforest trees={n_estimators} max_samples={forest.max_samples_}")
        return cls(forest, X32.shape[1])

    def _tree(self, tree, feats):
        """Per node: global feature, float32 threshold; per leaf: path length and credits."""
        feats = np.asarray(feats)
        left, right = tree.children_left, tree.children_right
        n = tree.node_count
        feature = np.where(left >= 0, feats[np.maximum(tree.feature, 0)], 0)
        threshold = np.array([_floor_f32(t) if left[i] >= 0 else np.float32(0)
                              for i, t in enumerate(tree.threshold)], np.float32)
        leaves = {}
        stack = [(0, 0, {})]  # node, depth, splits per feature on the way
        while stack:
            node, depth, counts = stack.pop()
            if left[node] < 0:
                h = depth + float(_average_path_length([tree.n_node_samples[node]])[0])
                credit = {f: c / h for f, c in counts.items()} if h > 0 else {}
                leaves[node] = (h, credit)
                continue
            f = int(feature[node])
            below = dict(counts)
            below[f] = below.get(f, 0) + 1
            stack.append((int(right[node]), depth + 1, below))
            stack.append((int(left[node]), depth + 1, below))
        return {"n": n, "left": left, "right": right, "feature": feature,
                "threshold": threshold, "leaves": leaves}

    def summary(self):
        return {"trees": len(self.trees), "max_samples": int(self.forest.max_samples_),
                "attribution": "depth-weighted split credit (1/path length per split)"}

    def _leaf(self, t, x):
        node = 0
        while t["left"][node] >= 0:
            node = t["left"][node] if x[t["feature"][node]] <= t["threshold"][node] else t["right"][node]
        return t["leaves"][int(node)]

    def reference(self, X):
        """Contributions from walking the trees in numpy; the score agrees with sklearn's."""
        X32 = _f32(X)
        out = np.zeros((len(X32), self.F))
        for i, x in enumerate(X32):
            H, U = 0.0, np.zeros(self.F)
            for t in self.trees:
                h, credit = self._leaf(t, x)
                H += h
                for f, c in credit.items():
                    U[f] += c
            U += self.CREDIT_PRIOR
            s = 2.0 ** (-H / (len(self.trees) * self.c_psi))
            out[i] = s * U / U.sum()
        return out

    def sklearn_scores(self, X):
        return -self.forest.score_samples(_f32(X))

    def graph(self, helper, numpy_helper, F):
        a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                             "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                             "target_treeids", "target_nodeids", "target_ids", "target_weights")}
        for ti, t in enumerate(self.trees):
            for node in range(t["n"]):
                leaf = t["left"][node] < 0
                a["nodes_treeids"].append(ti)
                a["nodes_nodeids"].append(node)
                a["nodes_featureids"].append(0 if leaf else int(t["feature"][node]))
                a["nodes_values"].append(0.0 if leaf else float(t["threshold"][node]))
                a["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
                a["nodes_truenodeids"].append(0 if leaf else int(t["left"][node]))
                a["nodes_falsenodeids"].append(0 if leaf else int(t["right"][node]))
                if leaf:
                    h, credit = t["leaves"][node]
                    for target, w in sorted(credit.items()) + [(F, h)]:
                        a["target_treeids"].append(ti)
                        a["target_nodeids"].append(node)
                        a["target_ids"].append(int(target))
                        a["target_weights"].append(float(w))
        T = len(self.trees)
        inits = [numpy_helper.from_array(np.array([0], np.int64), "if_zero"),
                 numpy_helper.from_array(np.array([F], np.int64), "if_f"),
                 numpy_helper.from_array(np.array([F + 1], np.int64), "if_f1"),
                 numpy_helper.from_array(np.array([1], np.int64), "if_axis"),
                 numpy_helper.from_array(np.array(-math.log(2.0) / (T * self.c_psi), np.float32), "if_rate"),
                 numpy_helper.from_array(np.array(self.CREDIT_PRIOR, np.float32), "if_prior")]
        nodes = [
            helper.make_node("TreeEnsembleRegressor", [INPUT_NAME], ["forest"], name="forest",
                             domain="ai.onnx.ml", n_targets=F + 1, aggregate_function="SUM",
                             post_transform="NONE", **a),
            helper.make_node("Slice", ["forest", "if_zero", "if_f", "if_axis"], ["credit_raw"], name="credit"),
            helper.make_node("Slice", ["forest", "if_f", "if_f1", "if_axis"], ["path_sum"], name="path"),
            helper.make_node("Mul", ["path_sum", "if_rate"], ["log_score"], name="rate"),
            helper.make_node("Exp", ["log_score"], ["score"], name="score"),
            helper.make_node("Add", ["credit_raw", "if_prior"], ["credit"], name="prior"),
            helper.make_node("ReduceSum", ["credit", "if_axis"], ["credit_total"], keepdims=1, name="total"),
            helper.make_node("Div", ["credit", "credit_total"], ["share"], name="share"),
            helper.make_node("Mul", ["share", "score"], [OUTPUT_NAME], name="split"),
        ]
        doc = ("Isolation Forest detector. score = 2^(-E[h(x)]/c(psi)); contributions split it over "
               "features by depth-weighted split credit; score = row sum.")
        return nodes, inits, None, doc


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

def to_onnx(detector, mean, std):
    """The contract ModelProto for a fitted detector, checked with onnx.checker; the caller
    adds the metadata (which needs scores from this very graph)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    F = len(mean)
    nodes, inits = [], []
    if detector.standardized:  # a forest splits raw features: no scaling, no `expected`
        inits = [numpy_helper.from_array(_f32(mean), "feature_mean"),
                 numpy_helper.from_array(_f32(std), "feature_std")]
        nodes = [helper.make_node("Sub", [INPUT_NAME, "feature_mean"], ["centered"], name="center"),
                 helper.make_node("Div", ["centered", "feature_std"], ["z"], name="standardize")]
    body, body_inits, reconstruction, doc = detector.graph(helper, numpy_helper, F)
    nodes += body
    inits += body_inits
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", F])]
    if reconstruction:
        # What the model expected each feature to be, in raw units (for explanations).
        nodes += [helper.make_node("Mul", [reconstruction, "feature_std"], ["expected_centered"], name="unscale"),
                  helper.make_node("Add", ["expected_centered", "feature_mean"], [EXPECTED_NAME], name="uncenter")]
        outputs.append(helper.make_tensor_value_info(EXPECTED_NAME, TensorProto.FLOAT, ["N", F]))
    graph = helper.make_graph(
        nodes, f"sensor_anomaly_{detector.kind}",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", F])],
        outputs=outputs, initializer=inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if detector.kind == "iforest":
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    m = helper.make_model(graph, opset_imports=opsets,
                          producer_name="sensor-anomaly scripts/train.py", producer_version="2")
    m.ir_version = IR_VERSION
    m.doc_string = doc
    onnx.checker.check_model(m, full_check=True)
    return m


def ort_run(model_bytes: bytes, X, outputs=(OUTPUT_NAME,)):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])
    res = sess.run(list(outputs), {INPUT_NAME: _f32(X)})
    return res[0] if len(outputs) == 1 else res
