"""elang.client: submit texts to an elang-serve Triton server and collect routing statistics."""
