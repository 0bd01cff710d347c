"""Pure computations over the model: flows, netfilter, routing, overlay, stitching, diagnosis."""
