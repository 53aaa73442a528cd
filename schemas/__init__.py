"""The wire contract: one Avro record per `*.avsc` file, older versions in `history/`.

A package only so the schemas ship inside the wheel and are read with importlib.resources
(jarvis.codec.store); it holds no code.
"""
