"""Language models: `chat` (the chat-model factory and bounded calls), `errors` (messages users can act on),
`guard` (deadline and byte budget under the HTTP client), `local` (the llama.cpp server).

Import from the submodule: importing this package imports none of them (the extractive path needs no LLM).
"""
