"""The sans-IO protocol core: messages, decoder, encoders, state machine and steps."""
