"""llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``), started with
llama.cpp's plain CPU weights: on a CPU with AMX, a natively built llama.cpp repacks Q4_1 weights
for AMX and crashes in its first decode (see ``llama_zoo.backends.llamacpp.plain_cpu_weights``).
Every argument goes to the server as it is:

    python benchmarks/serve_llama_cpp.py --model model.gguf --host 127.0.0.1 --port 8080 --n_ctx 4096
"""

import runpy
import sys

import llama_cpp

from llama_zoo.backends.llamacpp import plain_cpu_weights

if __name__ == "__main__":
    plain_cpu_weights(llama_cpp)
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__")
