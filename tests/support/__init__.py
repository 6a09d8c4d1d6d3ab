"""What several test modules share: in-process command lines, the app server, the app's test runner."""
