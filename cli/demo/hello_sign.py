"""The `sign` block of `hello`: the greeter's answer plus who was greeted."""


def main(block_input: dict[str, str], env: dict[str, object]) -> dict[str, object]:
    return {**block_input, "greeted": env["name"] or "stranger"}
