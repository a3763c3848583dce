"""The seam between control and the data plane: plain data, errors and the Protocols control
calls. control/ depends on these, agent/ implements them, and neither imports the other, so
the agent can later run in another process on another host."""
