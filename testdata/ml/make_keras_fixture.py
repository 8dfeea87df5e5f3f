"""Regenerate keras_mlp.onnx and keras_mlp_expected.json: a small Keras MLP (trained a few epochs on seeded
data so that every weight and bias is non-trivial) exported to ONNX with tf2onnx, with Keras's own class
probabilities, pre-softmax logits and the TensorFlow input gradients of the summed cross-entropy on fixed rows.
The Rust test crates/ml/tests/framework_exports.rs checks that aegis loads it (tract forward, gradient-checked
evaluator) and reproduces all three.

Needs tensorflow (or tensorflow-cpu) and tf2onnx; TensorFlow is not installed in CI, so the fixture is committed:
  python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf2onnx
  /tmp/tfvenv/bin/python testdata/ml/make_keras_fixture.py
"""
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf2onnx

here = Path(__file__).parent
tf.keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x_train = rng.normal(size=(300, 6)).astype(np.float32)
y_train = (x_train[:, 0] + 0.5 * x_train[:, 1] - x_train[:, 2] > 0).astype(np.int64) + (x_train[:, 3] > 1)

inp = tf.keras.Input(shape=(6,), name="x")
h = tf.keras.layers.Dense(16, activation="relu")(inp)
h = tf.keras.layers.Dense(12, activation="tanh")(h)
logits = tf.keras.layers.Dense(3, name="logits")(h)
proba = tf.keras.layers.Activation("softmax", name="proba")(logits)
model = tf.keras.Model(inp, proba)
model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
model.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)

spec = (tf.TensorSpec((None, 6), tf.float32, name="x"),)
tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=str(here / "keras_mlp.onnx"))

x = rng.uniform(-2, 2, size=(10, 6)).astype(np.float32)
y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
to_logits = tf.keras.Model(inp, logits)
xt = tf.constant(x)
with tf.GradientTape() as tape:
    tape.watch(xt)
    z = to_logits(xt)
    loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z))
grad = tape.gradient(loss, xt)
(here / "keras_mlp_expected.json").write_text(json.dumps({
    "x": x.flatten().tolist(),
    "y": y.tolist(),
    "proba": model(xt).numpy().flatten().tolist(),
    "logits": z.numpy().flatten().tolist(),
    "grad": grad.numpy().flatten().tolist(),
    "tensorflow": tf.__version__,
    "tf2onnx": tf2onnx.__version__,
}, indent=1))
