"""Where leads come from and how they get ready to be contacted: sources, harvest, scoring, qualification."""
