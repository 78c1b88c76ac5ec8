"""Contacts (lkms101): the people and companies a business deals with."""
