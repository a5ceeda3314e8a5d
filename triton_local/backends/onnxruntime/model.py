"""TEST-ONLY STAND-IN for Triton's native onnxruntime backend.

No registry offers Triton's C++ onnxruntime backend for this machine, so the local Triton used in
development and tests puts this file in its backend directory as ``onnxruntime/model.py``: a
Python-based backend (served by Triton's real Python backend) that runs ``<version>/model.onnx``
with onnxruntime on the CPU. The model repository's ``config.pbtxt`` files load unchanged; the
server, the v2 protocol, dynamic batching, health and metrics are real Triton. In production
(the NGC ``tritonserver`` image) Triton's own onnxruntime backend serves the same folders and this
file is not used.

Dynamic batching: Triton hands ``execute`` several requests at once; requests whose inputs have
the same shape past the batch dimension are concatenated and run as one batch, then split.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        # like the native backend: the config's `intra_op_thread_count` (0 or none: onnxruntime's
        # default); STANDIN_ORT_THREADS overrides it for experiments
        params = config.get("parameters", {})
        threads = params.get("intra_op_thread_count", {}).get("string_value", "0")
        opts.intra_op_num_threads = int(os.environ.get("STANDIN_ORT_THREADS", threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]

    def _run(self, names, tensors):
        return self.session.run(list(names), dict(zip(self.inputs, tensors)))

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs] for r in requests]
        # like Triton's native backend, compute only the outputs the client asked for
        wanted = [tuple(r.requested_output_names()) or tuple(self.outputs) for r in requests]
        responses = [None] * len(requests)
        groups = {}
        for i, tensors in enumerate(arrays):
            groups.setdefault((tuple(t.shape[1:] for t in tensors), wanted[i]), []).append(i)
        for (_, names), members in groups.items():
            try:
                if len(members) == 1:
                    outs = [self._run(names, arrays[members[0]])]
                else:
                    joined = [np.concatenate([arrays[i][k] for i in members]) for k in range(len(self.inputs))]
                    merged = self._run(names, joined)
                    sizes = np.cumsum([arrays[i][0].shape[0] for i in members])[:-1]
                    parts = [np.split(o, sizes) for o in merged]
                    outs = [[p[j] for p in parts] for j in range(len(members))]
                for i, out in zip(members, outs):
                    responses[i] = pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(names, out)]
                    )
            except Exception as exc:  # one bad batch fails its requests, not the server
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        return responses
