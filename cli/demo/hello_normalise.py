"""The `normalise` block of `hello`: accepts {"name": ...} or a bare string, trims it."""


def main(block_input: object, env: dict[str, object]) -> dict[str, str]:
    raw = block_input.get("name") if isinstance(block_input, dict) else block_input
    name = str(raw or "").strip()
    env["name"] = name  # env lives for the whole run: the last block reads it
    return {"name": name}
