"""Commands that send work to a chosen instance: pick_cmd and pick_exec (`pick` and its body),
exec_cmd (`exec`), run_cmd and run_stream (`run` and its body), embed_cmd and embed_batches
(`embed` and its body), request_input (prompt, texts and options from argv and stdin), spinner
(run's wait on a terminal), bench_cmd (`bench`: measured speed per instance).
"""
