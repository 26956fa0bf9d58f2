"""Device adapters: each turns one kind of lane hardware's frames into events."""
