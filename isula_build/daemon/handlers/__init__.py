"""One module per request of the Control service; service.py routes requests here."""
