"""The `greet` block of the `greeter` worklet: {"name": "Ada"} -> {"message": "Hello, Ada!"}."""


def main(block_input: dict[str, str]) -> dict[str, str]:
    name = block_input["name"]
    return {"message": f"Hello, {name}!"}
