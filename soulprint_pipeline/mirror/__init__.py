"""The app's user_profiles table and the import's progress mirrored into it."""
