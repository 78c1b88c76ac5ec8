"""The issues service (lkms103): support issues with attachments."""
