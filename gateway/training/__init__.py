"""Training-side code: synthetic shelf scenes and the item detector's training tools."""
