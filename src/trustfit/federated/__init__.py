"""Federated fine-tuning on Flower: partitions, the ClientApp around trustfit's training loop, the ServerApp with its strategies, simulation and deployment."""
