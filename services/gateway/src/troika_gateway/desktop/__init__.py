"""The person's PCs: pairing, their connections, and the desktop actions handed to them."""
