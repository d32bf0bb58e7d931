"""The session-minutes service: the live minutes of each case (drafts with versions), read-back and
approval, the case written into the complaint database, and the signed documents (biên bản, thông báo kết
luận). It writes its own tables (drafts, documents) and the complaint database only through ``complaints``'
service layer; it never imports the room server, the media stack or the web layer."""
