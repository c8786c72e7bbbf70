"""Jobs: the pipeline that sends, the journal that lets it resume, restore, verify and rekey."""
