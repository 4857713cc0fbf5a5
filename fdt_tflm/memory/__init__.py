"""Memory: tensor lifetimes, TFLM's planner model, the scheduler and the ILP offset planner."""
