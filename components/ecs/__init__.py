"""ECS-only concerns: GPU capacity, task roles, pre-warm, inference services, autoscaling."""
