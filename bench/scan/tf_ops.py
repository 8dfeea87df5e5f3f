"""Write TensorFlow's op registry (every registered op name, sorted, `stateful` after the ops TensorFlow marks
stateful) to crates/scan/data/tf_ops.txt.

`aegis scan` reports a SavedModel node whose op is neither in this list nor a function of the model's own
library: such an op is a custom kernel from a native library the loader must have loaded, whose behaviour the
file cannot show. Ops TensorFlow does not mark stateful only compute on their inputs; stateful ones are
reviewed in crates/scan/src/savedmodel.rs (variables, tables, random numbers, control flow are fine; files,
network and the host are not). Regenerate with the TensorFlow version to cover (ModelScan's venv in bench/run.sh has one):

    bench/.venv/modelscan/bin/python bench/scan/tf_ops.py
"""
import os

import tensorflow as tf
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api

buf = c_api.TF_GetAllOpList()
ops = op_def_pb2.OpList()
ops.ParseFromString(c_api.TF_GetBuffer(buf))
stateful = {op.name for op in ops.op if op.is_stateful}
names = sorted({op.name for op in ops.op})
out = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "scan", "data", "tf_ops.txt")
with open(out, "w") as f:
    f.write(f"# TensorFlow {tf.__version__} op registry: {len(names)} ops (bench/scan/tf_ops.py)\n")
    f.write("\n".join(f"{n} stateful" if n in stateful else n for n in names) + "\n")
print(f"{len(names)} ops from TensorFlow {tf.__version__} -> {os.path.normpath(out)}")
