"""Services about a mailbox as a whole: testing that it can log in and read its folders."""
