"""llama.cpp's OpenAI-compatible server (the xllamacpp wheel), run as its own process by tests that need a real
endpoint: `python tests/llama_server.py MODEL.gguf PORT [THREADS]` serves on 127.0.0.1:PORT (PORT 0: any free port),
prints its address on one line once it listens, and serves until stdin closes or the process is killed. One
thread unless told (benchmarks/llm_expert.py gives 2), a 2,048-token context and one slot: small and quiet on a
shared 2-core machine."""

import sys

import xllamacpp


def main() -> None:
    model, port = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]  # loopback only
    params.port = port
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    print(server.listening_address, flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
    del server


if __name__ == "__main__":
    main()
