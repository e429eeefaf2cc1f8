"""The OpenAI Videos API dialect (`/v1/videos`): protocol, render, router, schema."""
