"""The names of the tensors the served models add: the contract between the export scripts that
write them (``export_scripts/ctc_head.py``, ``export_scripts/input_head.py``) and the pipeline that
reads them. Written once, here.
"""

# The greedy-CTC head appended to recognition models: per time step, the best class and its probability.
CTC_ARGMAX = "ctc_argmax"
CTC_MAX_PROB = "ctc_max_prob"
# The uint8 input head: the detection map as uint8, and the valid width of each padded row of a
# recognition or orientation batch. A model that has them takes uint8 NHWC images (a quarter of
# the bytes of float32 CHW on the Triton hop).
PROB_U8 = "prob_u8"
VALID_WIDTH = "valid_width"
