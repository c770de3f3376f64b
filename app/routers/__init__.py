"""The API's routes, one router per concern: `jobs` (submit, poll, images, cancel), `health`, `page`."""
