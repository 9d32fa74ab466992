"""What both drivers share above the protocol core: channel checks and quoting, the
reconnection policy, opening a session across hosts, and the pub/sub procedures."""
